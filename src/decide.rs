//! Decide: folds an event's findings into its one decision.
//!
//! The most severe action wins (close_account > takedown > suppress > pass) and, among findings
//! of that action, the most points: handbook 3.3.2 (6) punishes one act that breaks several
//! rules by the heaviest of them, not by their sum. Every finding stays in the decision as
//! evidence, heaviest first, up to [`MAX_FINDINGS`].

use crate::contract::{Action, Decision, Finding, ListingEvent, DECISION_SCHEMA};

/// Findings a decision keeps. A description that repeats a banned word ten thousand times
/// needs a few spans to show a moderator, not ten thousand.
pub const MAX_FINDINGS: usize = 64;

pub fn decide(
    event: &ListingEvent,
    mut findings: Vec<Finding>,
    rules_version: &str,
    decided_at: String,
) -> Decision {
    let (action, points) = findings
        .iter()
        .map(Finding::penalty)
        .max()
        .unwrap_or((Action::Pass, 0));

    // Heaviest first; the sort is stable, so findings of equal weight keep the order the
    // checks produced them in (field by field, left to right).
    findings.sort_by_key(|f| std::cmp::Reverse(f.penalty()));
    let findings_omitted = findings.len().saturating_sub(MAX_FINDINGS);
    findings.truncate(MAX_FINDINGS);

    Decision {
        schema: DECISION_SCHEMA.to_owned(),
        event_id: event.event_id.clone(),
        listing_id: event.listing.id.clone(),
        listing_version: event.listing.version,
        seller_id: event.seller.id.clone(),
        action,
        points,
        findings,
        findings_omitted,
        appeal_deadline: None,
        rules_version: rules_version.to_owned(),
        decided_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Kind;

    fn event() -> ListingEvent {
        serde_json::from_str(
            r#"{"schema":"listing-event/v1","event_id":"e1","op":"upsert",
                "occurred_at":"2026-12-02T09:15:00+08:00","seller":{"id":"S1"},
                "listing":{"id":"P1","version":2,"title":"t"}}"#,
        )
        .unwrap()
    }

    fn finding(rule: &str, action: Action, points: u32) -> Finding {
        Finding {
            kind: Kind::TermsProhibited,
            rule: rule.to_owned(),
            field: "title".to_owned(),
            start: 0,
            end: 1,
            text: "x".to_owned(),
            action,
            points,
            evidence: None,
        }
    }

    #[test]
    fn no_findings_is_a_pass_with_no_points() {
        let decision = decide(&event(), Vec::new(), "v1", "now".to_owned());
        assert_eq!(decision.action, Action::Pass);
        assert_eq!(decision.points, 0);
        assert_eq!(decision.listing_version, Some(2));
    }

    #[test]
    fn the_heaviest_penalty_decides_and_points_do_not_add_up() {
        let findings = vec![
            finding("adlaw.absolute", Action::Suppress, 0),
            finding("t4", Action::Takedown, 6),
            finding("t2", Action::Takedown, 12),
            finding("t3", Action::Takedown, 0),
        ];
        let decision = decide(&event(), findings, "v1", "now".to_owned());
        assert_eq!((decision.action, decision.points), (Action::Takedown, 12));
        let order: Vec<&str> = decision.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(order, ["t2", "t4", "t3", "adlaw.absolute"]);
    }

    #[test]
    fn findings_beyond_the_cap_are_counted_not_kept() {
        let findings = (0..MAX_FINDINGS + 5)
            .map(|_| finding("adlaw.absolute", Action::Suppress, 0))
            .collect();
        let decision = decide(&event(), findings, "v1", "now".to_owned());
        assert_eq!(decision.findings.len(), MAX_FINDINGS);
        assert_eq!(decision.findings_omitted, 5);
    }
}
