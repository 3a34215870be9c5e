//! `loomguard explain`: one decision as a moderator reads it.
//!
//! The verdict first, then each finding with its rule and the field text around the span,
//! the span highlighted (bold red on a terminal, between `>>` and `<<` elsewhere).

use std::fmt::Write;

use time::OffsetDateTime;

use crate::checks::Scratch;
use crate::contract::{Decision, ListingEvent};
use crate::decode::decode;
use crate::moderator::{timestamp, Moderator};

/// Characters of context shown on each side of a span.
const CONTEXT_CHARS: usize = 30;

/// Decides the event in `input` (a JSON object, or the first line of a JSON-lines file) and
/// renders the verdict. Returns the report and whether the input was a decidable event.
pub fn explain_input(moderator: &Moderator, input: &[u8], colour: bool) -> (String, bool) {
    // As `run` does at the start of its input.
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let decoded = decode(input).or_else(|whole| {
        // A JSON-lines file: explain its first record.
        let first = input
            .split(|&b| b == b'\n')
            .find(|line| !line.iter().all(u8::is_ascii_whitespace));
        match first {
            Some(line) if line.len() < input.len() => decode(line),
            _ => Err(whole),
        }
    });
    match decoded {
        Ok(decoded) => {
            let decision = moderator.decide(
                &decoded,
                &mut Scratch::default(),
                timestamp(OffsetDateTime::now_utc()),
            );
            (render(&decoded.event, &decision, colour), true)
        }
        Err(err) => (
            format!(
                "not a listing event ({}): {}\nIn a run this record would go to the dead letters.\n",
                err.reason.as_str(),
                err.message
            ),
            false,
        ),
    }
}

/// The moderator's view of a decision.
pub fn render(event: &ListingEvent, decision: &Decision, colour: bool) -> String {
    let mut out = String::new();
    let title = event.listing.title.as_deref().unwrap_or("");
    let _ = writeln!(
        out,
        "{} — listing {} (seller {}, event {})",
        decision.action.as_str().to_uppercase(),
        decision.listing_id,
        decision.seller_id,
        decision.event_id
    );
    let _ = writeln!(
        out,
        "points {}; rules {}; title: {title}",
        decision.points, decision.rules_version
    );
    if decision.findings.is_empty() {
        let _ = writeln!(out, "\nNo findings: nothing in this listing breaks a rule.");
        return out;
    }

    let _ = writeln!(out);
    for (n, finding) in decision.findings.iter().enumerate() {
        let _ = writeln!(
            out,
            "{}. {} [{}] {}, {} points",
            n + 1,
            finding.kind,
            finding.rule,
            finding.action,
            finding.points
        );
        if let Some(text) = field_text(event, &finding.field) {
            let _ = writeln!(
                out,
                "   {}: {}",
                finding.field,
                highlight(text, finding.start, finding.end, colour)
            );
        } else {
            let _ = writeln!(out, "   {}: {}", finding.field, finding.text);
        }
        if let Some(evidence) = &finding.evidence {
            let _ = writeln!(out, "   evidence: {evidence}");
        }
    }
    if decision.findings_omitted > 0 {
        let _ = writeln!(
            out,
            "… and {} lighter findings not kept",
            decision.findings_omitted
        );
    }
    out
}

fn field_text<'e>(event: &'e ListingEvent, field: &str) -> Option<&'e str> {
    let listing = &event.listing;
    match field {
        "title" => listing.title.as_deref(),
        "description" => Some(listing.description.as_str()),
        _ => field
            .strip_prefix("attributes.")
            .and_then(|name| listing.attributes.get(name))
            .map(|value| value.as_str()),
    }
}

/// `text` around the character span `[start, end)`, the span marked.
fn highlight(text: &str, start: usize, end: usize, colour: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let end = end.min(chars.len());
    let start = start.min(end);
    let from = start.saturating_sub(CONTEXT_CHARS);
    let to = (end + CONTEXT_CHARS).min(chars.len());

    let piece = |range: std::ops::Range<usize>| -> String {
        chars[range]
            .iter()
            .map(|&c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let (open, close) = if colour {
        ("\x1b[1;31m", "\x1b[0m")
    } else {
        (">>", "<<")
    };
    format!(
        "{}{}{open}{}{close}{}{}",
        if from > 0 { "…" } else { "" },
        piece(from..start),
        piece(start..end),
        piece(end..to),
        if to < chars.len() { "…" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::highlight;

    #[test]
    fn highlight_marks_the_span_by_characters() {
        assert_eq!(
            highlight("最好的全棉府绸", 0, 2, false),
            ">>最好<<的全棉府绸"
        );
    }

    #[test]
    fn highlight_cuts_long_text_around_the_span() {
        let text = format!("{}最好{}", "布".repeat(100), "纱".repeat(100));
        let shown = highlight(&text, 100, 102, false);
        assert!(shown.starts_with('…') && shown.ends_with('…'));
        assert_eq!(shown.chars().count(), 1 + 30 + 2 + 2 + 2 + 30 + 1);
    }
}
