//! The configuration file: `run`'s settings in TOML, for deployments that prefer a file (a
//! Kubernetes ConfigMap, say) to flags.
//!
//! Precedence, highest first: flags, environment variables, the file, built-in defaults. The
//! file is applied by filling in the environment variables that are not set, before the
//! command line is parsed, so that one mechanism (clap's environment fallback) decides every
//! setting. librdkafka properties from the file come before those given as flags, so a flag
//! overrides the same key.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// Every key is optional; unknown keys are errors, so that a misspelt setting is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub input: Option<String>,
    pub output: Option<String>,
    pub dead_letter: Option<String>,
    pub rules: Option<String>,
    pub max_event_bytes: Option<u64>,
    pub threads: Option<usize>,
    pub brokers: Option<String>,
    pub group_id: Option<String>,
    pub input_topic: Option<String>,
    pub output_topic: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub state_topic: Option<String>,
    pub no_state_topic: Option<bool>,
    pub image_topic: Option<String>,
    pub no_image_topic: Option<bool>,
    pub batches_in_flight: Option<usize>,
    pub exactly_once: Option<bool>,
    pub transactional_id: Option<String>,
    pub linger_ms: Option<u64>,
    pub shutdown_seconds: Option<u64>,
    /// `host:port` of the HTTP listener (`/metrics`, `/healthz`, `/readyz`).
    pub listen: Option<String>,
    /// Do not reload the rules on SIGHUP or on changes to the rule directory.
    pub no_reload: Option<bool>,
    pub no_images: Option<bool>,
    pub state_dir: Option<String>,
    pub image_root: Option<String>,
    /// Hosts images may be fetched from.
    pub image_allow_hosts: Option<Vec<String>>,
    pub image_timeout_ms: Option<u64>,
    pub image_max_bytes: Option<u64>,
    pub image_concurrency: Option<usize>,
    /// Bearer tokens of the complaint API.
    pub api_tokens: Option<Vec<String>>,
    /// librdkafka properties for both clients.
    #[serde(default)]
    pub kafka_properties: BTreeMap<String, String>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|err| ConfigError::Invalid {
            path: path.display().to_string(),
            line: err
                .span()
                .map_or(0, |span| crate::rules::line_of(&text, span.start)),
            message: err.message().trim().to_owned(),
        })
    }

    /// The settings as the environment variables `run` reads.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mut vars = Vec::new();
        let mut set = |name: &'static str, value: Option<String>| {
            if let Some(value) = value {
                vars.push((name, value));
            }
        };
        set("LOOMGUARD_INPUT", self.input.clone());
        set("LOOMGUARD_OUTPUT", self.output.clone());
        set("LOOMGUARD_DEAD_LETTER", self.dead_letter.clone());
        set("LOOMGUARD_RULES", self.rules.clone());
        set(
            "LOOMGUARD_MAX_EVENT_BYTES",
            self.max_event_bytes.map(|v| v.to_string()),
        );
        set("LOOMGUARD_THREADS", self.threads.map(|v| v.to_string()));
        set("LOOMGUARD_BROKERS", self.brokers.clone());
        set("LOOMGUARD_GROUP_ID", self.group_id.clone());
        set("LOOMGUARD_INPUT_TOPIC", self.input_topic.clone());
        set("LOOMGUARD_OUTPUT_TOPIC", self.output_topic.clone());
        set(
            "LOOMGUARD_DEAD_LETTER_TOPIC",
            self.dead_letter_topic.clone(),
        );
        set("LOOMGUARD_STATE_TOPIC", self.state_topic.clone());
        set(
            "LOOMGUARD_NO_STATE_TOPIC",
            self.no_state_topic.map(|v| v.to_string()),
        );
        set("LOOMGUARD_IMAGE_TOPIC", self.image_topic.clone());
        set(
            "LOOMGUARD_NO_IMAGE_TOPIC",
            self.no_image_topic.map(|v| v.to_string()),
        );
        set(
            "LOOMGUARD_BATCHES_IN_FLIGHT",
            self.batches_in_flight.map(|v| v.to_string()),
        );
        set(
            "LOOMGUARD_EXACTLY_ONCE",
            self.exactly_once.map(|v| v.to_string()),
        );
        set("LOOMGUARD_TRANSACTIONAL_ID", self.transactional_id.clone());
        set("LOOMGUARD_LINGER_MS", self.linger_ms.map(|v| v.to_string()));
        set(
            "LOOMGUARD_SHUTDOWN_SECONDS",
            self.shutdown_seconds.map(|v| v.to_string()),
        );
        set("LOOMGUARD_LISTEN", self.listen.clone());
        set("LOOMGUARD_NO_RELOAD", self.no_reload.map(|v| v.to_string()));
        set("LOOMGUARD_NO_IMAGES", self.no_images.map(|v| v.to_string()));
        set("LOOMGUARD_STATE_DIR", self.state_dir.clone());
        set("LOOMGUARD_IMAGE_ROOT", self.image_root.clone());
        set(
            "LOOMGUARD_IMAGE_ALLOW_HOSTS",
            self.image_allow_hosts.as_ref().map(|h| h.join(",")),
        );
        set(
            "LOOMGUARD_IMAGE_TIMEOUT_MS",
            self.image_timeout_ms.map(|v| v.to_string()),
        );
        set(
            "LOOMGUARD_IMAGE_MAX_BYTES",
            self.image_max_bytes.map(|v| v.to_string()),
        );
        set(
            "LOOMGUARD_IMAGE_CONCURRENCY",
            self.image_concurrency.map(|v| v.to_string()),
        );
        set(
            "LOOMGUARD_API_TOKENS",
            self.api_tokens.as_ref().map(|t| t.join(",")),
        );
        vars
    }
}

/// The `--config PATH` (or `--config=PATH`) in `args`, else `LOOMGUARD_CONFIG`.
pub fn config_path(args: &[String]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().cloned();
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_owned());
        }
    }
    std::env::var("LOOMGUARD_CONFIG")
        .ok()
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_comes_from_the_flag_in_either_form() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            config_path(&args(&["run", "--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            config_path(&args(&["run", "--config=b.toml"])),
            Some("b.toml".into())
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loomguard.toml");
        std::fs::write(&path, "brokers = \"k:9092\"\nbrokerz = \"x\"\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("loomguard.toml:2:"), "{err}");
        assert!(err.contains("brokerz"), "{err}");
    }

    #[test]
    fn settings_become_the_environment_run_reads() {
        let file: ConfigFile = toml::from_str(
            "brokers = \"k:9092\"\nexactly_once = true\nlinger_ms = 7\nlisten = \"0.0.0.0:9898\"\n",
        )
        .unwrap();
        assert_eq!(
            file.environment(),
            [
                ("LOOMGUARD_BROKERS", "k:9092".to_owned()),
                ("LOOMGUARD_EXACTLY_ONCE", "true".to_owned()),
                ("LOOMGUARD_LINGER_MS", "7".to_owned()),
                ("LOOMGUARD_LISTEN", "0.0.0.0:9898".to_owned()),
            ]
        );
    }
}
