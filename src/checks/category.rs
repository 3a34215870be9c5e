//! Category placement (handbook 3.1.2 (2), 类目放置错误), kind `category`: the product the title
//! sells belongs to a category the listing's category path cannot hold, such as a garment
//! filed under fabrics (the handbook's own example) or a loom under cotton fabrics.
//!
//! Runs in the parallel half, after [`super::product`] has found the title's head noun. The
//! path is mapped onto `rules/categories.toml` by its first level the taxonomy names; a path
//! outside the taxonomy, or a title without a product noun, is not judged.

use serde_json::json;

use super::{Checks, Scratch};
use crate::contract::{Finding, Kind, Listing};

pub(super) fn check(checks: &Checks, listing: &Listing, scratch: &Scratch, out: &mut Vec<Finding>) {
    let taxonomy = &checks.taxonomy;
    let (Some(head), Some(filed)) = (
        scratch.products.head,
        taxonomy.category_of_path(&listing.category),
    ) else {
        return;
    };
    let filed_under = &taxonomy.categories[filed];
    if filed_under.holds.contains(&head.category) {
        return;
    }
    let title = listing.title.as_deref().unwrap_or("");
    let evidence = json!({
        "product": scratch.title.slice(head.start, head.end),
        "product_category": taxonomy.categories[head.category].id,
        "category_path": listing.category,
        "path_category": filed_under.id,
    });
    out.extend(checks.finding_at(
        Kind::Category,
        "title",
        title,
        head.start,
        head.end,
        evidence,
    ));
}
