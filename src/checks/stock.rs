//! No stock (handbook 3.1.2 (5), 无货空挂), kind `stock`: a supply listing offered with a stock
//! of zero or less. A listing without a stock figure, or a purchase listing, says nothing
//! about stock and is not judged.
//!
//! Runs in the parallel half; it reads one number.

use serde_json::json;

use super::Checks;
use crate::contract::{Finding, Kind, Listing};

pub(super) fn check(checks: &Checks, listing: &Listing, out: &mut Vec<Finding>) {
    if listing.intent.as_deref() != Some("supply") {
        return;
    }
    let Some(stock) = &listing.stock else {
        return;
    };
    let Some(value) = stock.as_f64() else {
        return;
    };
    if value > 0.0 {
        return;
    }
    let text = stock.to_string();
    let evidence = json!({ "stock": stock, "intent": "supply" });
    let end = text.chars().count();
    out.extend(checks.finding_at(Kind::Stock, "stock", &text, 0, end, evidence));
}
