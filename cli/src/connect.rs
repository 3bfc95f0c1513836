//! How the command reaches the pool: Ceph's flags, or the Dovecot plugin's own settings
//! read through `doveconf`.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;
use rados_mail::MailStore;
use rados_mail::settings::{KEYS, Settings};

use crate::error::{Error, Result};

/// Connection flags (every command takes them, before or after its name).
#[derive(Debug, Args)]
#[command(next_help_heading = "Connection (the Ceph way; flags win over --doveconf, which wins over the environment)")]
pub struct ConnectArgs {
    /// ceph.conf to read [default: $CEPH_CONF, then Ceph's search path]
    #[arg(short = 'c', long = "conf", global = true, value_name = "PATH")]
    pub conf: Option<PathBuf>,
    /// Client id: `admin` means client.admin [default: $RADOS_MAIL_CLIENT or client.admin]
    #[arg(long = "id", global = true, value_name = "ID", conflicts_with = "name")]
    pub id: Option<String>,
    /// Full client name, like client.mail (instead of --id)
    #[arg(short = 'n', long = "name", global = true, value_name = "CLIENT")]
    pub name: Option<String>,
    /// Keyring file [default: $CEPH_KEYRING, then what ceph.conf names]
    #[arg(short = 'k', long = "keyring", global = true, value_name = "PATH")]
    pub keyring: Option<PathBuf>,
    /// Pool holding the mail [default: $RADOS_MAIL_POOL or mail]
    #[arg(short = 'p', long = "pool", global = true, value_name = "POOL")]
    pub pool: Option<String>,
    /// Pool holding the mail bodies, when not the index pool (the plugin's
    /// rados_data_pool; it must be the pool the deployment's format record names)
    /// [default: $RADOS_MAIL_DATA_POOL, or the index pool]
    #[arg(long = "data-pool", global = true, value_name = "POOL")]
    pub data_pool: Option<String>,
    /// Prefix of every user's namespace (the plugin's rados_namespace_prefix) [default: empty]
    #[arg(long = "namespace-prefix", global = true, value_name = "PREFIX")]
    pub namespace_prefix: Option<String>,
    /// Take the settings from the Dovecot plugin's `rados_*` settings, read with `doveconf`
    /// (of PATH, or of Dovecot's default configuration); write it `--doveconf=PATH`
    #[arg(long = "doveconf", global = true, value_name = "PATH", num_args = 0..=1, require_equals = true)]
    pub doveconf: Option<Option<PathBuf>>,
    /// Seconds (30, 2m) before a cluster operation fails as unavailable; 0 waits forever
    /// [default: $RADOS_MAIL_OP_TIMEOUT or 30]
    #[arg(long = "timeout", global = true, value_name = "DURATION")]
    pub timeout: Option<String>,
}

impl ConnectArgs {
    /// The settings these flags, `doveconf` and the environment describe.
    pub fn settings(&self) -> Result<Settings> {
        let mut s = Settings::default();
        // As librados::ClusterConfig::from_env (CEPH_CONF itself is read by librados).
        for (var, key) in [
            ("CEPH_KEYRING", "keyring"),
            ("RADOS_MAIL_CLIENT", "client_name"),
            ("RADOS_MAIL_POOL", "pool"),
            ("RADOS_MAIL_DATA_POOL", "data_pool"),
            ("RADOS_MAIL_OP_TIMEOUT", "timeout"),
        ] {
            if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
                s.set(key, &v).map_err(|e| Error::Usage(format!("${var}: {e}")))?;
            }
        }
        if let Some(path) = &self.doveconf {
            for (key, value) in doveconf_settings(path.as_ref())? {
                // A disk cache directory belongs to the mail processes (their uid, their
                // bound): the operator command never writes into it.
                if key != "cache_disk_dir" {
                    s.set(&key, &value).map_err(|e| Error::Usage(format!("doveconf: {e}")))?;
                }
            }
        }
        let mut set = |key: &str, value: Option<String>| -> Result<()> {
            match value {
                Some(v) => s.set(key, &v).map_err(|e| Error::Usage(e.to_string())),
                None => Ok(()),
            }
        };
        set("conf", self.conf.as_ref().map(|p| p.display().to_string()))?;
        set("keyring", self.keyring.as_ref().map(|p| p.display().to_string()))?;
        set("client_name", self.id.as_ref().map(|id| format!("client.{id}")).or_else(|| self.name.clone()))?;
        set("pool", self.pool.clone())?;
        set("data_pool", self.data_pool.clone())?;
        set("namespace_prefix", self.namespace_prefix.clone())?;
        set("timeout", self.timeout.clone())?;
        s.set("cache_disk_dir", "").map_err(Error::Store)?;
        Ok(s)
    }

    /// Connects.
    pub fn open(&self) -> Result<MailStore> {
        let settings = self.settings()?;
        settings.open().map_err(|e| {
            Error::Connect(format!(
                "pool {:?} as {} ({}): {e}",
                settings.cluster.pool,
                settings.cluster.client_name,
                settings
                    .cluster
                    .conf_path
                    .as_ref()
                    .map_or("Ceph's default ceph.conf".into(), |p| p.display().to_string())
            ))
        })
    }
}

/// The plugin's `rados_<key>` settings (only the keys `rados_mail::settings` knows), from
/// `doveconf [-c PATH] -P plugin`.
fn doveconf_settings(path: Option<&PathBuf>) -> Result<Vec<(String, String)>> {
    let mut cmd = Command::new("doveconf");
    if let Some(p) = path {
        cmd.arg("-c").arg(p);
    }
    cmd.args(["-P", "plugin"]);
    let out = cmd.output().map_err(|e| Error::Usage(format!("running doveconf: {e}")))?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "doveconf failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(parse_plugin_block(&String::from_utf8_lossy(&out.stdout)))
}

/// The `rados_*` lines of doveconf's `plugin { ... }` block, without the prefix.
fn parse_plugin_block(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut depth = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.ends_with('{') {
            depth += 1;
            continue;
        }
        if line == "}" {
            depth -= 1;
            continue;
        }
        if depth != 1 {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let Some(key) = key.trim().strip_prefix("rados_") else { continue };
        if KEYS.contains(&key) {
            out.push((key.to_string(), value.trim().to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_block() {
        let text = "plugin {\n  quota = count\n  rados_pool = p\n  rados_namespace_prefix = \n  rados_bogus = 1\n}\n";
        assert_eq!(
            parse_plugin_block(text),
            [("pool".to_string(), "p".to_string()), ("namespace_prefix".to_string(), String::new())]
        );
    }
}
