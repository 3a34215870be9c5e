//! Decide: folds an event's findings into its one decision.
//!
//! The most severe action wins (close_account > takedown > suppress > pass) and, among findings
//! of that action, the most points: handbook 3.3.2 (6) punishes one act that breaks several
//! rules by the heaviest of them, not by their sum. Every finding stays in the decision as
//! evidence, heaviest first, up to [`MAX_FINDINGS`].

use serde::Serialize;

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
    let verdict = Verdict::of(&mut findings);
    Decision {
        schema: DECISION_SCHEMA.to_owned(),
        event_id: event.event_id.to_string(),
        listing_id: event.listing.id.to_string(),
        listing_version: event.listing.version,
        seller_id: event.seller.id.to_string(),
        action: verdict.action,
        points: verdict.points,
        findings,
        findings_omitted: verdict.findings_omitted,
        appeal_deadline: None,
        rules_version: rules_version.to_owned(),
        decided_at,
    }
}

/// The action and points an event's findings add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub points: u32,
    pub findings_omitted: usize,
}

impl Verdict {
    /// Decides, and puts `findings` in the order a decision keeps them: heaviest first, at
    /// most [`MAX_FINDINGS`].
    pub fn of(findings: &mut Vec<Finding>) -> Verdict {
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
        Verdict {
            action,
            points,
            findings_omitted,
        }
    }
}

/// A [`Decision`] that borrows what it says from the event instead of copying it: the same
/// JSON, written for every event without a string copied first.
#[derive(Debug, Serialize)]
pub struct DecisionView<'a> {
    schema: &'static str,
    event_id: &'a str,
    listing_id: &'a str,
    listing_version: Option<u64>,
    seller_id: &'a str,
    action: Action,
    points: u32,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "is_zero")]
    findings_omitted: usize,
    appeal_deadline: Option<&'a str>,
    rules_version: &'a str,
    decided_at: &'a str,
}

impl<'a> DecisionView<'a> {
    /// The decision on `event`, whose `findings` [`Verdict::of`] put in order.
    pub fn new(
        event: &'a ListingEvent,
        verdict: Verdict,
        findings: &'a [Finding],
        appeal_deadline: Option<&'a str>,
        rules_version: &'a str,
        decided_at: &'a str,
    ) -> DecisionView<'a> {
        DecisionView {
            schema: DECISION_SCHEMA,
            event_id: &event.event_id,
            listing_id: &event.listing.id,
            listing_version: event.listing.version,
            seller_id: &event.seller.id,
            action: verdict.action,
            points: verdict.points,
            findings,
            findings_omitted: verdict.findings_omitted,
            appeal_deadline,
            rules_version,
            decided_at,
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
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
    fn the_borrowed_view_writes_the_decisions_json() {
        let mut with_evidence = finding("t2", Action::Takedown, 12);
        with_evidence.evidence = Some(serde_json::json!({ "requires_any_of": ["许可证"] }));
        let cases = [
            (Vec::new(), None),
            (
                vec![
                    finding("adlaw.absolute", Action::Suppress, 0),
                    with_evidence,
                ],
                Some("2026-12-08T09:15:00.000Z"),
            ),
            (
                (0..MAX_FINDINGS + 2)
                    .map(|_| finding("adlaw.absolute", Action::Suppress, 0))
                    .collect(),
                None,
            ),
        ];
        for (findings, deadline) in cases {
            let event = event();
            let mut decision = decide(&event, findings.clone(), "v1", "now".to_owned());
            decision.appeal_deadline = deadline.map(str::to_owned);
            let mut kept = findings;
            let verdict = Verdict::of(&mut kept);
            let view = DecisionView::new(&event, verdict, &kept, deadline, "v1", "now");
            assert_eq!(
                serde_json::to_string(&view).unwrap(),
                serde_json::to_string(&decision).unwrap()
            );
        }
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
