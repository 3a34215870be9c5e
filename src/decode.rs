//! Decode: the bytes of one input record into a typed [`ListingEvent`], or the reason they are
//! not one.
//!
//! Decoding is strict about what loomguard needs (the schema, the ids, a valid event time, a
//! title on an upsert, the right type for every known field) and lenient about the rest:
//! unknown fields are ignored so that producers can add fields before loomguard reads them.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::contract::{DeadLetterReason, ListingEvent, Op, EVENT_SCHEMA};

/// Why a record is not a listing event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: DeadLetterReason,
    pub message: String,
}

impl DecodeError {
    fn new(reason: DeadLetterReason, message: impl Into<String>) -> DecodeError {
        DecodeError {
            reason,
            message: message.into(),
        }
    }
}

/// A decoded event with the parsed time of the change.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub event: ListingEvent,
    pub occurred_at: OffsetDateTime,
}

pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::new(
            DeadLetterReason::EmptyLine,
            "the record is empty",
        ));
    }
    if let Some(at) = memchr::memchr(0, bytes) {
        return Err(DecodeError::new(
            DeadLetterReason::NulByte,
            format!("NUL byte at byte {at}"),
        ));
    }
    // The SIMD check is the fast path; std's only runs to say where a bad record goes wrong.
    let text = simdutf8::basic::from_utf8(bytes).map_err(|_| {
        let valid_up_to = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), |_| 0);
        DecodeError::new(
            DeadLetterReason::InvalidUtf8,
            format!("not UTF-8 from byte {valid_up_to}"),
        )
    })?;
    let first = text.trim_start().as_bytes()[0];
    if first != b'{' {
        // Still tell malformed JSON from a JSON value that is not an object.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => DecodeError::new(
                DeadLetterReason::NotAnObject,
                "the record is JSON but not an object",
            ),
            Err(err) => DecodeError::new(
                DeadLetterReason::MalformedJson,
                format!("malformed JSON: {err}"),
            ),
        });
    }

    let event: ListingEvent = match serde_json::from_str(text) {
        Ok(event) => event,
        Err(err) => return Err(classify(text, err)),
    };
    validate(event)
}

/// How serde_json says a number is past what an f64 or an integer holds.
const OUT_OF_RANGE: &str = "number out of range";

/// Names the field a shape error is about, which serde_json alone does not say. Only runs on
/// the error path, so the second parse costs nothing on good input.
fn classify(text: &str, err: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    // JSON itself sets no range on numbers: 1e400 is well-formed, just no value a field holds.
    let out_of_range = err.to_string().starts_with(OUT_OF_RANGE);
    if !out_of_range
        && matches!(
            err.classify(),
            Category::Syntax | Category::Eof | Category::Io
        )
    {
        return DecodeError::new(
            DeadLetterReason::MalformedJson,
            format!("malformed JSON: {err}"),
        );
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let located: Result<ListingEvent, _> = serde_path_to_error::deserialize(&mut deserializer);
    let (path, inner) = match located {
        Err(located) => (located.path().to_string(), located.into_inner().to_string()),
        Ok(_) => (String::from("."), err.to_string()),
    };
    let reason = if inner.starts_with("missing field") {
        DeadLetterReason::MissingField
    } else if inner.starts_with("duplicate field") || inner.starts_with(OUT_OF_RANGE) {
        // Valid JSON, but which of the two values the seller meant nobody can say, or a
        // number past any the field can hold.
        DeadLetterReason::InvalidValue
    } else {
        DeadLetterReason::WrongType
    };
    let at = if path == "." {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    DecodeError::new(reason, format!("{inner}{at}"))
}

fn validate(event: ListingEvent) -> Result<Decoded, DecodeError> {
    use DeadLetterReason::{InvalidValue, MissingField, UnsupportedSchema};

    if event.schema != EVENT_SCHEMA {
        return Err(DecodeError::new(
            UnsupportedSchema,
            format!("schema {:?} is not {EVENT_SCHEMA:?}", event.schema),
        ));
    }
    for (name, value) in [
        ("event_id", &event.event_id),
        ("seller.id", &event.seller.id),
        ("listing.id", &event.listing.id),
    ] {
        if value.trim().is_empty() {
            return Err(DecodeError::new(MissingField, format!("`{name}` is empty")));
        }
    }
    if event.op == Op::Upsert && event.listing.title.is_none() {
        return Err(DecodeError::new(
            MissingField,
            "missing field `title` at `listing` of an upsert",
        ));
    }
    let occurred_at = OffsetDateTime::parse(&event.occurred_at, &Rfc3339).map_err(|err| {
        DecodeError::new(
            InvalidValue,
            format!(
                "`occurred_at` {:?} is not an RFC 3339 time: {err}",
                event.occurred_at
            ),
        )
    })?;
    Ok(Decoded { event, occurred_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"schema":"listing-event/v1","event_id":"e1","op":"upsert",
        "occurred_at":"2026-12-02T09:15:00+08:00","seller":{"id":"S1","licences":[]},
        "listing":{"id":"P1","version":3,"intent":"supply","title":"全棉府绸",
        "category":["面料","棉类面料"],"attributes":{"成分":"100%棉"},"description":"",
        "price":{"amount":"9.6","currency":"CNY","unit":"米"},"stock":5000,"images":[]}}"#;

    fn reason(input: &str) -> DeadLetterReason {
        decode(input.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn a_complete_event_decodes() {
        let decoded = decode(GOOD.as_bytes()).unwrap();
        assert_eq!(decoded.event.listing.title.as_deref(), Some("全棉府绸"));
        assert_eq!(decoded.event.listing.attributes["成分"], "100%棉");
    }

    #[test]
    fn attribute_values_that_are_not_text_are_read_as_their_json_text_or_left_out() {
        let input = GOOD.replacen(
            r#"{"成分":"100%棉"}"#,
            r#"{"成分":"100%棉","克重":110,"幅宽":-150,"支数":40.5,"现货":true,
               "备注":null,"颜色":["红","蓝"],"尺寸":{"长":1}}"#,
            1,
        );
        let attributes = decode(input.as_bytes()).unwrap().event.listing.attributes;
        let read: Vec<(&str, &str)> = attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut want = vec![
            ("成分", "100%棉"),
            ("克重", "110"),
            ("幅宽", "-150"),
            ("支数", "40.5"),
            ("现货", "true"),
        ];
        want.sort();
        assert_eq!(read, want);
        let null = GOOD.replacen(r#""description":"""#, r#""description":null"#, 1);
        assert_eq!(
            decode(null.as_bytes()).unwrap().event.listing.description,
            ""
        );
        let null = GOOD.replacen(r#"{"成分":"100%棉"}"#, "null", 1);
        assert!(decode(null.as_bytes())
            .unwrap()
            .event
            .listing
            .attributes
            .is_empty());
    }

    #[test]
    fn unknown_fields_are_accepted() {
        let input = GOOD.replacen("\"op\"", "\"trace\":{\"x\":1},\"op\"", 1);
        assert!(decode(input.as_bytes()).is_ok());
    }

    #[test]
    fn a_delete_needs_only_the_listing_id() {
        let input = r#"{"schema":"listing-event/v1","event_id":"e2","op":"delete",
            "occurred_at":"2026-12-02T09:15:00Z","seller":{"id":"S1"},"listing":{"id":"P1"}}"#;
        assert!(decode(input.as_bytes()).is_ok());
    }

    #[test]
    fn bad_records_get_their_reason() {
        use DeadLetterReason::*;
        assert_eq!(reason(""), EmptyLine);
        assert_eq!(reason("   "), EmptyLine);
        assert_eq!(reason("{\"a\":\0}"), NulByte);
        assert_eq!(reason("[1,2]"), NotAnObject);
        assert_eq!(reason("\"text\""), NotAnObject);
        assert_eq!(reason("{\"schema\": "), MalformedJson);
        assert_eq!(reason("nonsense"), MalformedJson);
        assert_eq!(
            reason(&GOOD.replace("listing-event/v1", "listing-event/v9")),
            UnsupportedSchema
        );
        assert_eq!(
            reason(&GOOD.replace("\"event_id\":\"e1\",", "")),
            MissingField
        );
        assert_eq!(reason(&GOOD.replace("\"id\":\"P1\",", "")), MissingField);
        assert_eq!(
            reason(&GOOD.replace("\"title\":\"全棉府绸\",", "")),
            MissingField
        );
        assert_eq!(
            reason(&GOOD.replace("\"stock\":5000", "\"stock\":\"many\"")),
            WrongType
        );
        assert_eq!(
            reason(&GOOD.replace("\"version\":3", "\"version\":-3")),
            WrongType
        );
        assert_eq!(
            reason(&GOOD.replace("2026-12-02T09:15:00+08:00", "yesterday")),
            InvalidValue
        );
        assert!(decode(b"{\"title\":\"\xff\"}").unwrap_err().reason == InvalidUtf8);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let err = decode(
            GOOD.replace("\"stock\":5000", "\"stock\":\"many\"")
                .as_bytes(),
        )
        .unwrap_err();
        assert!(err.message.contains("listing.stock"), "{}", err.message);
        let err = decode(GOOD.replace("\"id\":\"S1\",", "").as_bytes()).unwrap_err();
        assert!(
            err.message.contains("missing field `id`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("seller"), "{}", err.message);
    }

    #[test]
    fn a_field_given_twice_is_an_invalid_value_not_a_wrong_type() {
        let twice = GOOD.replace("\"stock\":5000", "\"stock\":5000,\"stock\":0");
        let err = decode(twice.as_bytes()).unwrap_err();
        assert_eq!(err.reason, DeadLetterReason::InvalidValue);
        assert!(
            err.message.contains("duplicate field `stock`"),
            "{}",
            err.message
        );
        assert!(err.message.contains("listing"), "{}", err.message);
    }

    #[test]
    fn a_number_past_any_float_is_an_invalid_value_of_its_field() {
        for (from, to, message) in [
            (
                "\"stock\":5000",
                "\"stock\":1e400",
                "number out of range at line 5 column 76 at `listing.stock`",
            ),
            (
                "\"version\":3",
                "\"version\":-1e400",
                "number out of range at line 3 column 45 at `listing.version`",
            ),
        ] {
            let err = decode(GOOD.replace(from, to).as_bytes()).unwrap_err();
            assert_eq!(err.reason, DeadLetterReason::InvalidValue);
            assert_eq!(err.message, message);
        }
    }
}
