//! Hot reload of the rules in a running `loomguard run`, on a slow stdin stream: a rule
//! change mid-run decides later events with the new version and its new rule; a broken file,
//! SIGHUP on it, and a rule directory that disappears keep the last good version and count
//! failed reloads.

mod common;

use std::path::Path;

use common::service::{Scrape, Service};
use serde_json::Value;

fn event(id: &str) -> String {
    serde_json::json!({
        "schema": "listing-event/v1", "event_id": id, "op": "upsert",
        "occurred_at": "2026-12-02T09:15:00+08:00",
        "seller": {"id": format!("S-{id}"), "licences": []},
        "listing": {"id": format!("P-{id}"), "version": 1, "intent": "supply",
                    "title": "全棉府绸 40s×40s 133×72 织梦神布",
                    "category": ["面料", "棉类面料"], "attributes": {"成分": "100%棉"},
                    "description": "", "price": {"amount": 9.6, "currency": "CNY", "unit": "米"},
                    "stock": 100, "images": []}
    })
    .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Replaces a file the way editors and ConfigMap updates do: write aside, then rename.
fn replace(path: &Path, text: &str, aside: &Path) {
    std::fs::write(aside, text).unwrap();
    std::fs::rename(aside, path).unwrap();
}

fn version(scrape: &Scrape) -> String {
    let versions: Vec<&String> = scrape
        .samples
        .keys()
        .filter(|(name, _)| name == "loomguard_rules_info")
        .filter_map(|(_, labels)| labels.get("version"))
        .collect();
    assert_eq!(versions.len(), 1, "one version at a time: {versions:?}");
    versions[0].clone()
}

fn reloads(scrape: &Scrape, outcome: &str) -> f64 {
    scrape.value("loomguard_rule_reloads_total", &[("outcome", outcome)])
}

fn decided(scrape: &Scrape) -> f64 {
    scrape.sum("loomguard_decisions_total")
}

#[test]
fn a_rule_change_mid_run_decides_later_events_and_a_broken_one_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_dir(&common::repo().join("rules"), &rules);
    let out = dir.path().join("decisions.jsonl");
    let aside = dir.path().join("aside.toml");
    let mut service = Service::start(&[
        "--rules",
        rules.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);

    // 1. The first event, with the rules as shipped.
    service.send(&[event("1")]);
    let scrape = service.wait_for("the first decision", |s| decided(s) == 1.0);
    let first = version(&scrape);

    // 2. A new Advertising-Law term, written mid-run: reloaded without a restart.
    let adlaw = rules.join("adlaw.toml");
    let shipped = std::fs::read_to_string(&adlaw).unwrap();
    let changed = shipped.replacen(
        "\"国家级\", \"世界级\",",
        "\"国家级\", \"织梦神布\", \"世界级\",",
        1,
    );
    assert_ne!(changed, shipped, "the anchor of the edit is in adlaw.toml");
    replace(&adlaw, &changed, &aside);
    let scrape = service.wait_for("a successful reload", |s| reloads(s, "success") == 1.0);
    let second = version(&scrape);
    assert_ne!(second, first);
    assert_eq!(reloads(&scrape, "failure"), 0.0);
    service.send(&[event("2")]);
    service.wait_for("the second decision", |s| decided(s) == 2.0);

    // 3. A broken file: the last good set stays and the failure is counted.
    replace(&adlaw, "pack = \"adlaw\"\n[[class]\n", &aside);
    let scrape = service.wait_for("a failed reload", |s| reloads(s, "failure") == 1.0);
    assert_eq!(version(&scrape), second);
    service.send(&[event("3")]);
    service.wait_for("the third decision", |s| decided(s) == 3.0);

    // 4. SIGHUP reloads too; the file is still broken.
    service.signal("HUP");
    let scrape = service.wait_for("a second failed reload", |s| reloads(s, "failure") == 2.0);
    assert_eq!(version(&scrape), second);

    // 5. The directory disappears: still the last good set.
    std::fs::rename(&rules, dir.path().join("gone")).unwrap();
    service.signal("HUP");
    let scrape = service.wait_for("a third failed reload", |s| reloads(s, "failure") >= 3.0);
    assert_eq!(version(&scrape), second);
    assert_eq!(reloads(&scrape, "success"), 1.0);
    service.send(&[event("4")]);
    service.wait_for("the fourth decision", |s| decided(s) == 4.0);

    assert!(service.finish().success());
    let decisions: Vec<Value> = common::read_lines(&out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<(&str, &str, bool)> = decisions
        .iter()
        .map(|d| {
            let new_rule = d["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["kind"] == "terms.adlaw" && f["text"] == "织梦神布");
            (
                d["event_id"].as_str().unwrap(),
                d["rules_version"].as_str().unwrap(),
                new_rule,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("1", first.as_str(), false),
            ("2", second.as_str(), true),
            ("3", second.as_str(), true),
            ("4", second.as_str(), true),
        ]
    );
    assert_eq!(decisions[0]["action"], "pass");
    assert_eq!(decisions[1]["action"], "suppress");
}
