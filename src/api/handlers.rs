//! The API's handlers: request shapes in, JSON out, errors as [`ApiError`].

use std::collections::BTreeMap;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{ApiError, ApiState, Outlet};
use crate::contract::{Action, Decision, DECISION_SCHEMA};
use crate::images::hasher::ImageProblem;
use crate::images::state::{ImageState, ListingMatch, LogRecord, Original};
use crate::images::{ImageHash, OriginalHashes, Perceptual};
use crate::moderator::timestamp;

/// Originals one complaint may bring.
const MAX_ORIGINALS: usize = 32;
/// Longest complaint id, rights holder or name accepted.
const MAX_NAME_CHARS: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplaintRequest {
    complaint_id: String,
    rights_holder: String,
    originals: Vec<ImageSource>,
}

/// An image given in a request: uploaded bytes (base64) or a URL, one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    base64: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    base64: Option<String>,
    #[serde(default)]
    url: Option<String>,
    /// Read as any JSON value, so that a negative, fractional or quoted distance is a
    /// `bad_distance` like one over the limit, not a malformed request.
    #[serde(default)]
    max_distance: Option<Value>,
}

fn check_name(what: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("{what} must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The bytes of an image given by URL or as base64.
async fn source_bytes(
    state: &ApiState,
    base64: Option<&str>,
    url: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    Ok(match (base64, url) {
        (Some(text), None) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|err| ApiError::bad_request("bad_image", format!("not base64: {err}")))?,
        (None, Some(url)) => state.fetcher.fetch(url).await.map_err(|err| {
            ApiError::bad_request(
                "image_unavailable",
                format!("cannot fetch {url}: {err} ({})", err.code()),
            )
        })?,
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "give an image as exactly one of `base64` and `url`",
            ))
        }
    })
}

/// Runs a decoder off the async threads.
async fn decode_off_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageProblem> + Send + 'static,
) -> Result<T, ApiError> {
    let decoded = tokio::task::spawn_blocking(work).await.map_err(|err| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the decoder stopped: {err}"),
        )
    })?;
    decoded.map_err(|problem| match problem {
        ImageProblem::Decode(err) => {
            ApiError::bad_request("bad_image", format!("{err} ({})", err.code()))
        }
        ImageProblem::Fetch(err) => ApiError::bad_request("image_unavailable", err.to_string()),
    })
}

/// A listing-side hash of an image given by URL or as base64.
async fn hash_source(
    state: &ApiState,
    base64: Option<&str>,
    url: Option<&str>,
) -> Result<Perceptual, ApiError> {
    let bytes = source_bytes(state, base64, url).await?;
    let images = state.images.clone();
    decode_off_thread(move || images.hasher.hash_upload(bytes)).await
}

/// The hashes of a protected original given by URL or as base64.
async fn hash_original_source(
    state: &ApiState,
    base64: Option<&str>,
    url: Option<&str>,
) -> Result<OriginalHashes, ApiError> {
    let bytes = source_bytes(state, base64, url).await?;
    let limits = *state.images.hasher.limits();
    decode_off_thread(move || Ok(crate::images::hash_original_bytes(&bytes, &limits)?)).await
}

fn listing_match_json(m: &ListingMatch) -> Value {
    json!({
        "listing_id": m.listing,
        "seller_id": m.seller,
        "image_url": m.url,
        "hash": m.hash,
        "distance": m.distance,
        "first_seen": m.first_seen,
    })
}

/// The live listings matching a complaint's originals: per listing image, its nearest
/// original.
fn complaint_matches_in(state: &ImageState, complaint: &str, radius: u32) -> Vec<Value> {
    let Some(registered) = state.complaint(complaint) else {
        return Vec::new();
    };
    let mut best: BTreeMap<(String, String), (u32, ListingMatch, String, bool)> = BTreeMap::new();
    for original in registered.originals.iter().filter(|o| o.matchable) {
        for (hash, mirrored) in original.bank() {
            for m in state.listings_near(hash, radius) {
                let key = (m.listing.clone(), m.url.clone());
                if best.get(&key).is_none_or(|(d, ..)| m.distance < *d) {
                    best.insert(key, (m.distance, m, original.original.clone(), mirrored));
                }
            }
        }
    }
    let mut matches: Vec<(u32, Value)> = best
        .into_values()
        .map(|(distance, m, original, mirrored)| {
            let mut value = listing_match_json(&m);
            value["original"] = json!(original);
            value["mirrored"] = json!(mirrored);
            (distance, value)
        })
        .collect();
    matches.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1["listing_id"].as_str().cmp(&b.1["listing_id"].as_str()))
    });
    matches.into_iter().map(|(_, v)| v).collect()
}

pub async fn register_complaint(
    State(state): State<ApiState>,
    request: Result<Json<ComplaintRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(request) = request?;
    check_name("complaint_id", &request.complaint_id)?;
    check_name("rights_holder", &request.rights_holder)?;
    if request.originals.is_empty() || request.originals.len() > MAX_ORIGINALS {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("a complaint brings 1 to {MAX_ORIGINALS} originals"),
        ));
    }
    if state
        .images
        .state()
        .complaint(&request.complaint_id)
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "complaint_exists",
            format!("complaint {} is registered already", request.complaint_id),
        ));
    }

    // Every original is hashed before anything is registered: a bad one fails the whole
    // complaint, which the handler can fix and send again.
    let mut hashed = Vec::new();
    for (number, source) in request.originals.iter().enumerate() {
        let name = match (&source.name, &source.url) {
            (Some(name), _) => name.clone(),
            (None, Some(url)) => url.clone(),
            (None, None) => format!("original-{}", number + 1),
        };
        check_name("an original's name", &name)?;
        let hash = hash_original_source(&state, source.base64.as_deref(), source.url.as_deref())
            .await
            .map_err(|mut err| {
                err.message = format!("original {}: {}", number + 1, err.message);
                err
            })?;
        hashed.push((name, hash));
    }

    let now = OffsetDateTime::now_utc();
    let at = timestamp(now);
    let radius = state.images.rules().0.infringement_distance;
    let records: Vec<LogRecord> = hashed
        .iter()
        .map(|(name, hash)| LogRecord::Original {
            complaint: request.complaint_id.clone(),
            rights_holder: request.rights_holder.clone(),
            original: name.clone(),
            hash: hash.picture.hash,
            mirrored: hash.picture.mirrored,
            crops: hash.crops.clone(),
            matchable: state.images.matchable(&hash.picture),
            at: at.clone(),
        })
        .collect();
    // In Kafka mode the topic first: a complaint it does not hold is registered nowhere, and
    // the handler can send it again.
    if let Outlet::Kafka(outlet) = &state.outlet {
        outlet.append(&records).await.map_err(|err| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("cannot append the originals to the image index topic ({err}); nothing was registered"),
            )
        })?;
    }

    let (matches, decisions) = {
        let mut index = state.images.state();
        // Once in the topic, the originals reach every other worker whatever happens here,
        // so only a file-mode registration can still be refused.
        if matches!(state.outlet, Outlet::Local(_))
            && index.complaint(&request.complaint_id).is_some()
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "complaint_exists",
                format!("complaint {} is registered already", request.complaint_id),
            ));
        }
        for record in &records {
            state.images.record(&mut index, record.clone());
        }
        let matches = complaint_matches_in(&index, &request.complaint_id, radius);
        let decisions = suppressions(&state, &index, &request, &matches, now, &at);
        (matches, decisions)
    };
    state.images.flush();
    let registered: Vec<Value> = records
        .iter()
        .filter_map(|record| match record {
            LogRecord::Original {
                original,
                hash,
                matchable,
                ..
            } => Some(json!({"original": original, "hash": hash, "matchable": matchable})),
            _ => None,
        })
        .collect();
    let suppressed = decisions.len();
    match &state.outlet {
        Outlet::Local(emit) => {
            if !decisions.is_empty() {
                emit(decisions);
            }
        }
        Outlet::Kafka(outlet) => outlet.decide(&decisions).await.map_err(|err| {
            crate::metrics::global().count_error(crate::metrics::ErrorStage::Delivery);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!(
                    "complaint {} is registered, but its {suppressed} suppressions could not be written to the decision topic ({err}); GET /v1/complaints/{}/matches lists the listings",
                    request.complaint_id, request.complaint_id
                ),
            )
        })?,
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "complaint_id": request.complaint_id,
            "rights_holder": request.rights_holder,
            "registered_at": at,
            "originals": registered,
            "matches": matches,
            "suppressed": suppressed,
        })),
    ))
}

/// One `suppress` decision per matching listing, with the infringement finding of each of
/// its matching images.
fn suppressions(
    state: &ApiState,
    index: &ImageState,
    request: &ComplaintRequest,
    matches: &[Value],
    now: OffsetDateTime,
    at: &str,
) -> Vec<Decision> {
    let moderator = &state.moderator;
    let rules = &state.images.rules().0;
    let deadline = state.images.appeal_deadline(now);
    let mut by_listing: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for m in matches {
        if let Some(listing) = m["listing_id"].as_str() {
            by_listing.entry(listing).or_default().push(m);
        }
    }
    let mut decisions = Vec::new();
    for (listing, found) in by_listing {
        let Some(live) = index.listing(listing) else {
            continue;
        };
        let findings: Vec<_> = found
            .iter()
            .filter_map(|m| {
                let url = m["image_url"].as_str()?;
                let number = live.images.iter().position(|i| i.url == url)?;
                state.images.infringement_finding(
                    &moderator.checks(),
                    number,
                    url,
                    json!({
                        "complaint": request.complaint_id,
                        "rights_holder": request.rights_holder,
                        "original": m["original"],
                        "mirrored": m["mirrored"],
                        "distance": m["distance"],
                        "max_distance": rules.infringement_distance,
                        "hash": m["hash"],
                    }),
                )
            })
            .collect();
        let Some(first) = findings.first() else {
            continue;
        };
        decisions.push(Decision {
            schema: DECISION_SCHEMA.to_owned(),
            event_id: format!("complaint:{}", request.complaint_id),
            listing_id: listing.to_owned(),
            listing_version: live.version,
            seller_id: live.seller.clone(),
            action: first.action.max(Action::Suppress),
            points: first.points,
            findings,
            findings_omitted: 0,
            appeal_deadline: Some(deadline.clone()),
            rules_version: moderator.rules().version.clone(),
            decided_at: at.to_owned(),
        });
    }
    decisions
}

pub async fn complaint_matches(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let radius = state.images.rules().0.infringement_distance;
    let index = state.images.state();
    let Some(complaint) = index.complaint(&id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no complaint {id}"),
        ));
    };
    let originals: Vec<Value> = complaint.originals.iter().map(original_json).collect();
    Ok(Json(json!({
        "complaint_id": complaint.id,
        "rights_holder": complaint.rights_holder,
        "registered_at": complaint.registered_at,
        "max_distance": radius,
        "originals": originals,
        "matches": complaint_matches_in(&index, &id, radius),
    })))
}

fn original_json(original: &Original) -> Value {
    json!({"original": original.original, "hash": original.hash, "matchable": original.matchable})
}

pub async fn search(
    State(state): State<ApiState>,
    request: Result<Json<SearchRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = request?;
    let rules = &state.images.rules().0;
    let radius = match &request.max_distance {
        None => rules.infringement_distance,
        Some(value) => value
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .filter(|&d| d <= rules.search_distance)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_distance",
                    format!(
                        "max_distance is a whole number of bits from 0 to {}, not {value}",
                        rules.search_distance
                    ),
                )
            })?,
    };
    let (hash, matchable) = match (&request.hash, &request.base64, &request.url) {
        (Some(hex), None, None) => {
            let hash: ImageHash = hex.parse().map_err(|err: crate::images::hash::BadHash| {
                ApiError::bad_request("bad_hash", err.to_string())
            })?;
            (hash, true)
        }
        (None, base64, url) if base64.is_some() != url.is_some() => {
            let hash = hash_source(&state, base64.as_deref(), url.as_deref()).await?;
            (hash.hash, state.images.matchable(&hash))
        }
        _ => {
            return Err(ApiError::bad_request(
                "bad_request",
                "give exactly one of `hash`, `base64` and `url`",
            ))
        }
    };
    let matches: Vec<Value> = if matchable {
        state
            .images
            .state()
            .listings_near(hash, radius)
            .iter()
            .map(listing_match_json)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "hash": hash,
        "matchable": matchable,
        "max_distance": radius,
        "matches": matches,
    })))
}

pub async fn listing_images(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    let rules = &state.images.rules().0;
    let index = state.images.state();
    let Some(live) = index.listing(&id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no live listing {id} with indexed images"),
        ));
    };
    let images: Vec<Value> = live
        .images
        .iter()
        .map(|image| {
            let (duplicates, infringes): (Vec<Value>, Vec<Value>) = if image.matchable {
                (
                    index
                        .seller_duplicates(&live.seller, &id, image, rules.duplicate_distance)
                        .iter()
                        .map(listing_match_json)
                        .collect(),
                    index
                        .originals_near(image.hash, rules.infringement_distance)
                        .iter()
                        .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                        .collect(),
                )
            } else {
                (Vec::new(), Vec::new())
            };
            json!({
                "url": image.url,
                "hash": image.hash,
                "matchable": image.matchable,
                "duplicates": duplicates,
                "infringes": infringes,
            })
        })
        .collect();
    Ok(Json(json!({
        "listing_id": id,
        "seller_id": live.seller,
        "listing_version": live.version,
        "first_seen": live.first_seen,
        "images": images,
    })))
}
