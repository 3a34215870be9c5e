//! The OpenAPI 3.1 document of the complaint API, served at `/v1/openapi.json`. A test holds
//! it to [`super::ROUTES`], the table the router is built from.

use serde_json::{json, Value};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "413": {"$ref": "#/components/responses/Error"},
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

fn id_parameter(what: &str) -> Value {
    json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"},
            "description": what}])
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "loomguard complaint API",
            "version": "1",
            "description": "Image-infringement complaints (handbook 3.2) and image lookups over loomguard's image index. Every route but this document needs `Authorization: Bearer TOKEN`. Errors are `{\"error\": {\"code\", \"message\"}}`; codes: bad_request, bad_image, bad_hash, bad_distance, image_unavailable, unauthorized, not_found, method_not_allowed, complaint_exists, too_large, unavailable."
        },
        "security": [{"bearer": []}],
        "paths": paths(),
        "components": components(),
    })
}

fn paths() -> Value {
    let ok = |schema: &str, description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
    };
    json!({
            "/v1/complaints": {
                "post": {
                    "summary": "Register a complaint's originals; suppress the live listings that match them at once",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ComplaintRequest"}}}},
                    "responses": with(json!({
                        "201": ok("ComplaintResult", "registered; the matching listings were suppressed"),
                        "409": {"$ref": "#/components/responses/Error"},
                    }), error_responses()),
                }
            },
            "/v1/complaints/{id}/matches": {
                "get": {
                    "summary": "The live listings whose images match a complaint's originals",
                    "parameters": id_parameter("the complaint id"),
                    "responses": with(json!({
                        "200": ok("ComplaintMatches", "the matches, nearest first"),
                        "404": {"$ref": "#/components/responses/Error"},
                    }), error_responses()),
                }
            },
            "/v1/images/search": {
                "post": {
                    "summary": "Listing images near an image (bytes or URL) or a hash",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}}}},
                    "responses": with(json!({"200": ok("SearchResult", "the listing images within the distance, nearest first")}), error_responses()),
                }
            },
            "/v1/listings/{id}/images": {
                "get": {
                    "summary": "A live listing's image hashes and what they match",
                    "parameters": id_parameter("the listing id"),
                    "responses": with(json!({
                        "200": ok("ListingImages", "the listing's indexed images"),
                        "404": {"$ref": "#/components/responses/Error"},
                    }), error_responses()),
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {}}}},
                }
            }
    })
}

/// Components are plain JSON (no values computed), kept as text: `json!` would need a higher
/// recursion limit for a tree this deep.
const COMPONENTS: &str = r##"{
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Hash": {"type": "string", "pattern": "^[0-9a-f]{16}$", "description": "64-bit DCT perceptual hash, hexadecimal"},
                "ImageSource": {"type": "object", "additionalProperties": false, "description": "exactly one of base64 and url",
                    "properties": {"name": {"type": "string"}, "base64": {"type": "string", "description": "the image file's bytes (JPEG, PNG, WebP, GIF)"}, "url": {"type": "string", "format": "uri"}}},
                "ComplaintRequest": {"type": "object", "additionalProperties": false, "required": ["complaint_id", "rights_holder", "originals"],
                    "properties": {"complaint_id": {"type": "string"}, "rights_holder": {"type": "string"},
                        "originals": {"type": "array", "minItems": 1, "maxItems": 32, "items": {"$ref": "#/components/schemas/ImageSource"}}}},
                "Original": {"type": "object", "properties": {"original": {"type": "string"}, "hash": {"$ref": "#/components/schemas/Hash"}, "matchable": {"type": "boolean", "description": "false for blank and low-detail images, which never match"}}},
                "ListingMatch": {"type": "object", "properties": {"listing_id": {"type": "string"}, "seller_id": {"type": "string"}, "image_url": {"type": "string"}, "hash": {"$ref": "#/components/schemas/Hash"}, "distance": {"type": "integer"}, "first_seen": {"type": "string", "format": "date-time"}, "original": {"type": "string"}, "mirrored": {"type": "boolean"}}},
                "ComplaintResult": {"type": "object", "properties": {"complaint_id": {"type": "string"}, "rights_holder": {"type": "string"}, "registered_at": {"type": "string", "format": "date-time"}, "originals": {"type": "array", "items": {"$ref": "#/components/schemas/Original"}}, "matches": {"type": "array", "items": {"$ref": "#/components/schemas/ListingMatch"}}, "suppressed": {"type": "integer", "description": "suppress decisions written to the decision output"}}},
                "ComplaintMatches": {"type": "object", "properties": {"complaint_id": {"type": "string"}, "rights_holder": {"type": "string"}, "registered_at": {"type": "string"}, "max_distance": {"type": "integer"}, "originals": {"type": "array", "items": {"$ref": "#/components/schemas/Original"}}, "matches": {"type": "array", "items": {"$ref": "#/components/schemas/ListingMatch"}}}},
                "SearchRequest": {"type": "object", "additionalProperties": false, "description": "exactly one of hash, base64 and url",
                    "properties": {"hash": {"$ref": "#/components/schemas/Hash"}, "base64": {"type": "string"}, "url": {"type": "string"}, "max_distance": {"type": "integer", "minimum": 0}}},
                "SearchResult": {"type": "object", "properties": {"hash": {"$ref": "#/components/schemas/Hash"}, "matchable": {"type": "boolean"}, "max_distance": {"type": "integer"}, "matches": {"type": "array", "items": {"$ref": "#/components/schemas/ListingMatch"}}}},
                "ListingImages": {"type": "object", "properties": {"listing_id": {"type": "string"}, "seller_id": {"type": "string"}, "listing_version": {"type": ["integer", "null"]}, "first_seen": {"type": "string"},
                    "images": {"type": "array", "items": {"type": "object", "properties": {"url": {"type": "string"}, "hash": {"$ref": "#/components/schemas/Hash"}, "matchable": {"type": "boolean"},
                        "duplicates": {"type": "array", "items": {"$ref": "#/components/schemas/ListingMatch"}},
                        "infringes": {"type": "array", "items": {"type": "object", "properties": {"complaint": {"type": "string"}, "rights_holder": {"type": "string"}, "original": {"type": "string"}, "distance": {"type": "integer"}, "mirrored": {"type": "boolean"}}}}}}}}}
            }
    }"##;

fn components() -> Value {
    // Parsing a constant: the test below proves it parses.
    serde_json::from_str(COMPONENTS).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_components_parse() {
        let components: Value = serde_json::from_str(COMPONENTS).unwrap();
        assert!(components["schemas"]["ComplaintRequest"].is_object());
    }
}
