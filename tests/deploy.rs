//! What `deploy/` holds must be usable: every YAML and JSON file parses, every metric the
//! Grafana dashboard or an alert rule names exists in a real scrape of `/metrics`, the README
//! lists every metric, and the rules ConfigMap is the rule directory.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::service::Service;
use serde_json::Value;

fn deploy() -> PathBuf {
    common::repo().join("deploy")
}

fn files_with(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_with(&path, extensions, out);
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
        {
            out.push(path);
        }
    }
    out.sort();
}

/// Every document of a YAML file, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        })
        .collect()
}

fn yaml(path: &Path) -> Value {
    let mut documents = yaml_documents(path);
    assert_eq!(documents.len(), 1, "{}", path.display());
    documents.remove(0)
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let mut yamls = Vec::new();
    files_with(&deploy(), &["yaml", "yml"], &mut yamls);
    let names: Vec<String> = yamls
        .iter()
        .map(|p| p.strip_prefix(deploy()).unwrap().display().to_string())
        .collect();
    for expected in [
        "compose.yaml",
        "grafana/provisioning/dashboards/loomguard.yaml",
        "k8s/deployment.yaml",
        "k8s/keda-scaledobject.yaml",
        "k8s/pdb.yaml",
        "prometheus/alerts.yaml",
        "prometheus/prometheus.yml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for path in &yamls {
        let documents = yaml_documents(path);
        assert!(!documents.is_empty(), "{} is empty", path.display());
        for document in documents {
            assert!(document.is_object(), "{}: not a mapping", path.display());
        }
    }

    let mut jsons = Vec::new();
    files_with(&deploy(), &["json"], &mut jsons);
    assert!(!jsons.is_empty());
    for path in &jsons {
        let text = std::fs::read_to_string(path).unwrap();
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(value.is_object(), "{}", path.display());
    }
}

#[test]
fn kubernetes_manifests_have_probes_requests_and_lag_scaling() {
    let k8s = deploy().join("k8s");
    let deployment = yaml(&k8s.join("deployment.yaml"));
    assert_eq!(deployment["kind"], "Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--listen=0.0.0.0:9898"), "{args:?}");

    assert_eq!(yaml(&k8s.join("pdb.yaml"))["kind"], "PodDisruptionBudget");
    assert_eq!(yaml(&k8s.join("service.yaml"))["kind"], "Service");
    let scaled = yaml(&k8s.join("keda-scaledobject.yaml"));
    assert_eq!(scaled["kind"], "ScaledObject");
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "kafka");
    assert_eq!(trigger["metadata"]["consumerGroup"], "loomguard");
    assert_eq!(trigger["metadata"]["topic"], "listing-events");
}

#[test]
fn the_rules_configmap_is_the_rule_directory() {
    let map = yaml(&deploy().join("k8s/configmap-rules.yaml"));
    assert_eq!(map["kind"], "ConfigMap");
    assert_eq!(map["metadata"]["name"], "loomguard-rules");
    let data = map["data"].as_object().unwrap();
    let mut files = Vec::new();
    files_with(&common::repo().join("rules"), &["toml", "tsv"], &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        data.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "run deploy/k8s/make-configmap"
    );
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            data[name.as_ref()].as_str().unwrap(),
            std::fs::read_to_string(path).unwrap(),
            "{name} differs from rules/: run deploy/k8s/make-configmap"
        );
    }
}

/// Every `loomguard_…` name in a PromQL expression.
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    let pattern = regex::Regex::new(r"\bloomguard_[a-z0-9_]+").unwrap();
    out.extend(pattern.find_iter(expr).map(|m| m.as_str().to_owned()));
}

fn dashboard_exprs() -> Vec<String> {
    let path = deploy().join("grafana/dashboards/loomguard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

fn alert_exprs() -> Vec<(String, String)> {
    let rules = yaml(&deploy().join("prometheus/alerts.yaml"));
    let mut exprs = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            exprs.push((
                rule["alert"].as_str().unwrap().to_owned(),
                rule["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    exprs
}

#[test]
fn every_metric_the_dashboard_and_alerts_name_is_scraped() {
    let service = Service::start(&[]);
    let scrape = service.scrape();
    let scraped = scrape.names();

    let mut named = BTreeSet::new();
    let dashboard = dashboard_exprs();
    assert!(dashboard.len() >= 12, "{dashboard:?}");
    for expr in &dashboard {
        metric_names(expr, &mut named);
    }
    let alerts = alert_exprs();
    let alert_names: BTreeSet<&str> = alerts.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "LoomguardConsumerLagGrowing",
        "LoomguardDeadLetterRatioHigh",
        "LoomguardNoEvents",
        "LoomguardErrorRatioHigh",
        "LoomguardRuleReloadFailing",
    ] {
        assert!(alert_names.contains(expected), "{expected}");
    }
    for (_, expr) in &alerts {
        metric_names(expr, &mut named);
    }
    assert!(named.len() >= 12, "{named:?}");
    // The lag has one series per assigned partition, so a scrape shows it only in Kafka mode
    // once partitions are assigned (tests/kafka_metrics.rs scrapes it there).
    let per_partition = ["loomguard_kafka_consumer_lag_messages"];
    let missing: Vec<&String> = named
        .iter()
        .filter(|n| !scraped.contains(*n) && !per_partition.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "named in deploy/ but not in a scrape: {missing:?}\nscraped: {scraped:?}"
    );

    // The dashboard shows what moderators asked for.
    let all = dashboard.join("\n");
    for needle in [
        "loomguard_events_received_total",
        "loomguard_decisions_total",
        "loomguard_findings_total",
        "action=~\"takedown|close_account\"",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "loomguard_kafka_consumer_lag_messages",
        "loomguard_dead_letters_total",
        "loomguard_image_fetches_total",
        "loomguard_rules_info",
    ] {
        assert!(all.contains(needle), "the dashboard lacks {needle}");
    }
}

#[test]
fn the_readme_lists_every_metric() {
    let service = Service::start(&[]);
    let text = service.scrape().text;
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let families: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() >= 15, "{families:?}");
    for family in families {
        assert!(
            readme.contains(&format!("`{family}`")),
            "README.md does not list {family}"
        );
    }
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    // promtool parses PromQL; CI installs it (.ci/run), elsewhere this test says it is skipped.
    let Ok(version) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: promtool is not installed (Debian's prometheus package has it)");
        return;
    };
    assert!(version.status.success());

    // Each query as a recording rule, which `promtool check rules` parses.
    let rules: Vec<Value> = dashboard_exprs()
        .iter()
        .enumerate()
        .map(|(n, expr)| serde_json::json!({ "record": format!("dashboard:query_{n}"), "expr": expr }))
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yaml");
    // JSON is YAML: promtool reads it as a rule file.
    std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let output = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{stdout}"
    );
}
