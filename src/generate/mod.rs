//! Realistic synthetic listing events for benchmarks: mostly clean textile listings built from
//! real products, specifications and market price bands, with a few percent of violations in
//! the forms sellers write them. The same seed always gives the same events.

use std::io;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use crate::contract::{Listing, ListingEvent, Op, Price, Seller, EVENT_SCHEMA};

#[derive(Deserialize)]
struct Vocabulary {
    prefixes: Vec<String>,
    suffixes: Vec<String>,
    /// Description sentences by group: `any`, `purchase`, and those products name.
    sentences: std::collections::BTreeMap<String, Vec<String>>,
    adlaw: Vec<String>,
    prohibited: Vec<String>,
    licensed: Vec<String>,
    contacts: Vec<String>,
    product: Vec<Product>,
}

#[derive(Deserialize)]
struct Product {
    name: String,
    specs: Vec<String>,
    /// The sentence groups its description draws on besides `any`.
    sentences: Vec<String>,
    category: Vec<compact_str::CompactString>,
    attributes: std::collections::BTreeMap<compact_str::CompactString, compact_str::CompactString>,
    unit: String,
    price: [f64; 2],
}

/// Share of events that are deletes, and of upserts that carry each kind of violation.
const DELETE_RATE: f64 = 0.02;
const ADLAW_RATE: f64 = 0.04;
const PROHIBITED_RATE: f64 = 0.01;
const LICENSED_RATE: f64 = 0.005;
const CONTACT_RATE: f64 = 0.005;
/// Share of upserts that are purchase (求购) listings.
const PURCHASE_RATE: f64 = 0.05;

/// Generates `count` events and hands each to `write` as one JSON line.
pub fn write_events(
    count: u64,
    seed: u64,
    mut write: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let vocabulary: Vocabulary = toml::from_str(include_str!("vocabulary.toml"))
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
    if !vocabulary.sentences.contains_key("any") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the generator's vocabulary has no `any` sentences",
        ));
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_789); // 2026-12-01
    let mut line = Vec::with_capacity(2048);

    for n in 0..count {
        let occurred_at = start + Duration::milliseconds(n as i64 * 37);
        let event = event(&vocabulary, &mut rng, n, occurred_at);
        line.clear();
        serde_json::to_writer(&mut line, &event).map_err(io::Error::other)?;
        line.push(b'\n');
        write(&line)?;
    }
    Ok(())
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &'a [String]) -> &'a str {
    &items[rng.usize(..items.len())]
}

fn event(v: &Vocabulary, rng: &mut fastrand::Rng, n: u64, at: OffsetDateTime) -> ListingEvent {
    let seller_id = compact_str::format_compact!("S{:05}", rng.u32(1..20_000));
    let listing_id = compact_str::format_compact!("G{n:08}");
    let occurred_at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
        .into();

    if rng.f64() < DELETE_RATE {
        return ListingEvent {
            schema: EVENT_SCHEMA.into(),
            event_id: compact_str::format_compact!("g-{n}"),
            op: Op::Delete,
            occurred_at,
            seller: Seller {
                id: seller_id,
                licences: Vec::new(),
            },
            listing: Listing {
                id: listing_id,
                version: None,
                intent: None,
                title: None,
                category: Vec::new(),
                attributes: Default::default(),
                description: String::new(),
                price: None,
                stock: None,
                images: Vec::new(),
            },
        };
    }

    let product = &v.product[rng.usize(..v.product.len())];
    let purchase = rng.f64() < PURCHASE_RATE;
    let (prefix, suffix) = if purchase {
        ("求购", "")
    } else {
        (pick(rng, &v.prefixes), pick(rng, &v.suffixes))
    };
    let mut title = [prefix, &product.name, pick(rng, &product.specs), suffix]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let groups: Vec<&[String]> = std::iter::once("any")
        .chain(product.sentences.iter().map(String::as_str))
        .chain(purchase.then_some("purchase"))
        .filter_map(|group| v.sentences.get(group).map(Vec::as_slice))
        .collect();
    let mut description: String = (0..rng.usize(4..10))
        .map(|_| {
            let group = groups[rng.usize(..groups.len())];
            pick(rng, group)
        })
        .collect();
    let any_sentence = &v.sentences["any"];

    // Violations go into the title or the description, at a random sentence boundary.
    // Contact details only count in the title.
    for (rate, words, title_only) in [
        (ADLAW_RATE, &v.adlaw, false),
        (PROHIBITED_RATE, &v.prohibited, false),
        (LICENSED_RATE, &v.licensed, false),
        (CONTACT_RATE, &v.contacts, true),
    ] {
        if rng.f64() < rate {
            let word = pick(rng, words);
            if title_only || rng.bool() {
                title = format!("{word} {title}");
            } else {
                description.push_str(word);
                description.push('，');
                description.push_str(pick(rng, any_sentence));
            }
        }
    }

    let [low, high] = product.price;
    let amount = ((low + (high - low) * rng.f64()) * 100.0).round() / 100.0;
    let images = (0..rng.usize(0..4))
        .map(|i| format!("https://img.example.com/p/{listing_id}-{i}.jpg"))
        .collect();

    ListingEvent {
        schema: EVENT_SCHEMA.into(),
        event_id: compact_str::format_compact!("g-{n}"),
        op: Op::Upsert,
        occurred_at,
        seller: Seller {
            id: seller_id,
            licences: Vec::new(),
        },
        listing: Listing {
            id: listing_id,
            version: Some(rng.u64(1..6)),
            intent: Some(if purchase { "purchase" } else { "supply" }.into()),
            title: Some(title),
            category: product.category.clone(),
            attributes: product.attributes.clone(),
            description,
            price: Some(Price {
                amount: serde_json::Number::from_f64(amount).map(serde_json::Value::Number),
                currency: Some("CNY".into()),
                unit: Some(product.unit.as_str().into()),
                negotiable: false,
            }),
            stock: Some(serde_json::Number::from(rng.u32(100..50_000))),
            images,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(count: u64, seed: u64) -> Vec<String> {
        let mut out = Vec::new();
        write_events(count, seed, |line| {
            out.push(String::from_utf8(line.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_events() {
        assert_eq!(lines(50, 3), lines(50, 3));
        assert_ne!(lines(50, 3), lines(50, 4));
    }

    #[test]
    fn every_generated_line_is_a_valid_event() {
        for line in lines(500, 1) {
            let decoded = crate::decode::decode(line.trim_end().as_bytes());
            assert!(decoded.is_ok(), "{line}: {decoded:?}");
        }
    }
}
