//! `listing-event/v1`: one listing change, as the publishing pipeline sends it.

use std::collections::BTreeMap;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// The value of `schema` this version of loomguard reads.
pub const EVENT_SCHEMA: &str = "listing-event/v1";

/// One listing change. Unknown fields are ignored so that the producer can add fields first.
///
/// Ids, names and other short texts are [`CompactString`]s, which hold up to 24 bytes without
/// allocating: decoding an event made two dozen allocations before, most of them for such
/// texts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListingEvent {
    pub schema: CompactString,
    pub event_id: CompactString,
    pub op: Op,
    /// RFC 3339 time of the change at the source; checked when decoding.
    pub occurred_at: CompactString,
    pub seller: Seller,
    pub listing: Listing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Upsert,
    Delete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seller {
    pub id: CompactString,
    /// Names of the licences the seller holds, as the platform recorded them.
    #[serde(default)]
    pub licences: Vec<CompactString>,
}

/// The listing as it stands after the change. A delete carries only `id`, so everything else
/// is optional here; decoding checks that an upsert has a title.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listing {
    pub id: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `supply` (供应) or `purchase` (求购); other values are kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Category path from the root, e.g. `["面料", "棉类面料"]`.
    #[serde(default)]
    pub category: Vec<CompactString>,
    /// The platform's attribute names (成分, 克重, 幅宽 …) to their values. A number or a
    /// boolean is kept as its JSON text; null, arrays and objects say nothing a check can read
    /// and are left out, rather than failing the whole event.
    #[serde(default, deserialize_with = "text_attributes")]
    pub attributes: BTreeMap<CompactString, CompactString>,
    /// Empty when absent or null.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<serde_json::Number>,
    #[serde(default)]
    pub images: Vec<String>,
}

/// A price as sellers enter it. `amount` stays raw JSON (a number or a decimal string, or
/// worse): an amount nobody can read is the price check's business, not a reason to drop the
/// event.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Price {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<CompactString>,
    /// 面议: the price is agreed with each buyer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negotiable: bool,
}

fn text_attributes<'de, D>(
    deserializer: D,
) -> Result<BTreeMap<CompactString, CompactString>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    deserializer.deserialize_option(Attributes)
}

/// The attributes object straight into the map the checks read, without a map of raw values
/// in between: every event has one.
struct Attributes;

impl<'de> serde::de::Visitor<'de> for Attributes {
    type Value = BTreeMap<CompactString, CompactString>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What serde says of a map, so that shape errors read as they always have.
        f.write_str("a map")
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(Attributes)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((name, value)) = map.next_entry::<CompactString, AttributeValue>()? {
            // A later duplicate key wins, as in any JSON map.
            match value.0 {
                Some(text) => {
                    out.insert(name, text);
                }
                None => {
                    out.remove(&name);
                }
            }
        }
        Ok(out)
    }
}

fn null_as_empty<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_default())
}

/// One attribute value as text, or `None` for a value no check can read. Read straight from
/// the JSON, without building a `serde_json::Value` first: this is on every event's path.
struct AttributeValue(Option<CompactString>);

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AttributeVisitor)
    }
}

struct AttributeVisitor;

impl<'de> serde::de::Visitor<'de> for AttributeVisitor {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_str<E>(self, v: &str) -> Result<AttributeValue, E> {
        Ok(AttributeValue(Some(CompactString::from(v))))
    }

    fn visit_string<E>(self, v: String) -> Result<AttributeValue, E> {
        Ok(AttributeValue(Some(CompactString::from(v))))
    }

    fn visit_bool<E>(self, v: bool) -> Result<AttributeValue, E> {
        Ok(AttributeValue(Some(CompactString::from(v.to_string()))))
    }

    fn visit_i64<E>(self, v: i64) -> Result<AttributeValue, E> {
        Ok(AttributeValue(Some(CompactString::from(v.to_string()))))
    }

    fn visit_u64<E>(self, v: u64) -> Result<AttributeValue, E> {
        Ok(AttributeValue(Some(CompactString::from(v.to_string()))))
    }

    fn visit_f64<E>(self, v: f64) -> Result<AttributeValue, E> {
        // The same text serde_json gives the number.
        Ok(AttributeValue(
            serde_json::Number::from_f64(v).map(|n| CompactString::from(n.to_string())),
        ))
    }

    fn visit_unit<E>(self) -> Result<AttributeValue, E> {
        Ok(AttributeValue(None))
    }

    fn visit_none<E>(self) -> Result<AttributeValue, E> {
        Ok(AttributeValue(None))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<AttributeValue, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(AttributeValue(None))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<AttributeValue, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(AttributeValue(None))
    }
}

impl ListingEvent {
    /// The listing's scanned text fields with the names findings use for them: `title`,
    /// `description` and `attributes.<name>`.
    pub fn text_fields(&self) -> impl Iterator<Item = (FieldName<'_>, &str)> {
        let listing = &self.listing;
        let title = listing
            .title
            .as_deref()
            .map(|text| (FieldName::Title, text));
        let description = Some((FieldName::Description, listing.description.as_str()));
        let attributes = listing
            .attributes
            .iter()
            .map(|(name, value)| (FieldName::Attribute(name), value.as_str()));
        title.into_iter().chain(description).chain(attributes)
    }
}

/// Which text of a listing a finding points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldName<'a> {
    Title,
    Description,
    Attribute(&'a str),
}

impl std::fmt::Display for FieldName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldName::Title => f.write_str("title"),
            FieldName::Description => f.write_str("description"),
            FieldName::Attribute(name) => write!(f, "attributes.{name}"),
        }
    }
}
