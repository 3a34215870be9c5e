//! `moderation-decision/v1`: what loomguard answers to each listing event.

use serde::{Deserialize, Serialize};

/// The value of `schema` in every decision this version writes.
pub const DECISION_SCHEMA: &str = "moderation-decision/v1";

/// What happens to a listing, from the mildest to the most severe. The order of the variants
/// is the order of severity: the decision takes the maximum over its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Pass,
    /// 取消进入搜索 / 暂不发布: hidden from search until fixed.
    Suppress,
    /// 删除 / 下架.
    Takedown,
    /// 关闭帐号.
    CloseAccount,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Pass,
        Action::Suppress,
        Action::Takedown,
        Action::CloseAccount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Suppress => "suppress",
            Action::Takedown => "takedown",
            Action::CloseAccount => "close_account",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fixed vocabulary that dashboards and downstream systems group findings by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "terms.prohibited")]
    TermsProhibited,
    #[serde(rename = "terms.adlaw")]
    TermsAdlaw,
    #[serde(rename = "licence")]
    Licence,
    #[serde(rename = "title.contact")]
    TitleContact,
    #[serde(rename = "title.no_product")]
    TitleNoProduct,
    #[serde(rename = "title.stuffing")]
    TitleStuffing,
    #[serde(rename = "title.mismatch")]
    TitleMismatch,
    #[serde(rename = "title.intent")]
    TitleIntent,
    #[serde(rename = "category")]
    Category,
    #[serde(rename = "attributes.composition")]
    AttributesComposition,
    #[serde(rename = "price")]
    Price,
    #[serde(rename = "stock")]
    Stock,
    #[serde(rename = "duplicate.text")]
    DuplicateText,
    #[serde(rename = "duplicate.image")]
    DuplicateImage,
    #[serde(rename = "infringement")]
    Infringement,
}

impl Kind {
    /// Every kind, in declaration order (a kind's index in it is `kind as usize`).
    pub const ALL: [Kind; 15] = [
        Kind::TermsProhibited,
        Kind::TermsAdlaw,
        Kind::Licence,
        Kind::TitleContact,
        Kind::TitleNoProduct,
        Kind::TitleStuffing,
        Kind::TitleMismatch,
        Kind::TitleIntent,
        Kind::Category,
        Kind::AttributesComposition,
        Kind::Price,
        Kind::Stock,
        Kind::DuplicateText,
        Kind::DuplicateImage,
        Kind::Infringement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TermsProhibited => "terms.prohibited",
            Kind::TermsAdlaw => "terms.adlaw",
            Kind::Licence => "licence",
            Kind::TitleContact => "title.contact",
            Kind::TitleNoProduct => "title.no_product",
            Kind::TitleStuffing => "title.stuffing",
            Kind::TitleMismatch => "title.mismatch",
            Kind::TitleIntent => "title.intent",
            Kind::Category => "category",
            Kind::AttributesComposition => "attributes.composition",
            Kind::Price => "price",
            Kind::Stock => "stock",
            Kind::DuplicateText => "duplicate.text",
            Kind::DuplicateImage => "duplicate.image",
            Kind::Infringement => "infringement",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of evidence: which rule fired, where, and what it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    /// The rule's own id from `rules/`.
    pub rule: String,
    /// `title`, `description`, `attributes.<name>`, or another part of the listing.
    pub field: String,
    /// Character offsets (Unicode scalar values) into the original field text.
    pub start: usize,
    pub end: usize,
    /// The original text between `start` and `end`.
    pub text: String,
    pub action: Action,
    pub points: u32,
    /// Check-specific detail, such as the licences a gated rule asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
}

impl Finding {
    /// How heavy a penalty this finding carries: the action first, then the points (handbook
    /// 3.3.2 (6): the heaviest applicable penalty decides).
    pub fn penalty(&self) -> (Action, u32) {
        (self.action, self.points)
    }
}

/// Exactly one per listing event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub schema: String,
    pub event_id: String,
    pub listing_id: String,
    pub listing_version: Option<u64>,
    pub seller_id: String,
    pub action: Action,
    pub points: u32,
    pub findings: Vec<Finding>,
    /// Findings left out because a listing had more than the decision keeps; the kept ones
    /// are the heaviest.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub findings_omitted: usize,
    /// Set on infringement suppressions: the end of the seller's time for counter-evidence.
    pub appeal_deadline: Option<String>,
    pub rules_version: String,
    pub decided_at: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
