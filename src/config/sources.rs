//! Where a configuration comes from: stonegate's TOML file, an existing
//! service's oslo.config / paste.deploy files (`--oslo-config`), and the
//! command line's `--listen`, `--upstream`, `--admin-listen`. They are merged
//! into one [`File`] before anything is checked, so there is one set of
//! rules for every source; a key given by two sources is an error naming
//! both, never a silent override.

use std::path::PathBuf;

use super::{oslo, Error, File, Problem, Settings};

/// The inputs of a configuration.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// stonegate's TOML file.
    pub toml: Option<PathBuf>,
    /// oslo.config and/or paste.deploy files, lowest precedence first.
    pub oslo: Vec<PathBuf>,
    /// `listen` from the command line.
    pub listen: Option<String>,
    /// `upstream` from the command line.
    pub upstream: Option<String>,
    /// `admin_listen` from the command line.
    pub admin_listen: Option<String>,
}

/// A loaded (not yet checked) configuration and what was imported into it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged file.
    pub file: File,
    /// The `[keystone_authtoken]` read from `--oslo-config` files, if any.
    pub imported: Option<oslo::Imported>,
}

impl Sources {
    /// A short name of the inputs, for messages.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.toml.iter().map(|p| p.display().to_string()).collect();
        parts.extend(self.oslo.iter().map(|p| p.display().to_string()));
        if parts.is_empty() {
            "<command line>".into()
        } else {
            parts.join(" + ")
        }
    }

    /// Reads and merges the sources (no semantic checks yet).
    pub fn load(&self) -> Result<Loaded, Error> {
        if self.oslo.is_empty() && self.cli_keys().next().is_none() {
            let Some(path) = &self.toml else {
                return Err(Error::Invalid(vec![Problem {
                    key: "--config".into(),
                    message: "give a TOML file (--config) or an oslo.config file (--oslo-config)"
                        .into(),
                }]));
            };
            return Ok(Loaded {
                file: File::load(path)?,
                imported: None,
            });
        }
        let mut table = match &self.toml {
            None => toml::Table::new(),
            // A table to merge into: unknown keys and wrong types are reported
            // by the parse of the merged table below (without line numbers).
            Some(path) => {
                let text = super::read(path)?;
                toml::from_str::<toml::Table>(&text).map_err(|e| Error::Parse {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
            }
        };
        let toml_name = self
            .toml
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string());
        let mut problems = Vec::new();
        for (key, value) in self.cli_keys() {
            if table.contains_key(key) {
                problems.push(Problem {
                    key: key.into(),
                    message: format!(
                        "given both in {toml_name} and as --{}; keep one",
                        key.replace('_', "-")
                    ),
                });
            }
            table.insert(key.into(), toml::Value::String(value.to_owned()));
        }
        let imported = if self.oslo.is_empty() {
            None
        } else {
            let imported = oslo::import(&self.oslo).map_err(Error::Invalid)?;
            let section = table
                .entry(oslo::GROUP)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section) = section else {
                return Err(Error::Invalid(vec![Problem {
                    key: oslo::GROUP.into(),
                    message: format!("must be a table in {toml_name}"),
                }]));
            };
            for (key, value) in &imported.table {
                if section.contains_key(key) {
                    let from = imported
                        .origins
                        .get(key)
                        .map_or_else(String::new, ToString::to_string);
                    problems.push(Problem {
                        key: format!("{}.{key}", oslo::GROUP),
                        message: format!("set both in {toml_name} and in {from}; keep one"),
                    });
                }
                section.insert(key.clone(), value.clone());
            }
            Some(imported)
        };
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        let file: File =
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| Error::Parse {
                    path: self.describe(),
                    message: super::parse::every_error(&e, table.keys().cloned(), || {
                        toml::Value::Table(table.clone())
                    }),
                })?;
        Ok(Loaded { file, imported })
    }

    /// Loads, checks and compiles the configuration (see [`File::build`]).
    /// A problem with an imported option names the file and line it came from.
    pub fn build(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let loaded = self.load()?;
        loaded.build(env)
    }

    fn cli_keys(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("listen", &self.listen),
            ("upstream", &self.upstream),
            ("admin_listen", &self.admin_listen),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
    }
}

impl Loaded {
    /// Checks and compiles (see [`File::build`]); a problem with an imported
    /// option names the file and line it came from. The import's warnings join [`Settings::warnings`].
    pub fn build(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let mut settings = self
            .file
            .build(env)
            .map_err(|e| match (e, &self.imported) {
                (Error::Invalid(problems), Some(imported)) => Error::Invalid(
                    problems
                        .into_iter()
                        .map(|mut p| {
                            if let Some(origin) = imported.origin_of(&p.key) {
                                p.message = format!("{} (from {origin})", p.message);
                            }
                            if self.missing_process_key(&p.key) {
                                // An oslo file never holds these: say where they go.
                                p.message = format!(
                                    "{}; pass --{} on the command line, or give a TOML file with it",
                                    p.message,
                                    p.key.replace('_', "-")
                                );
                            }
                            p
                        })
                        .collect(),
                ),
                (e, _) => e,
            })?;
        if let Some(imported) = &self.imported {
            settings
                .warnings
                .extend(imported.warnings.iter().map(|w| Problem {
                    key: "--oslo-config".into(),
                    message: w.clone(),
                }));
        }
        Ok(settings)
    }
}

impl Loaded {
    /// Whether `key` is one of the process keys (`listen`, `upstream`,
    /// `admin_listen`) that no source gave.
    fn missing_process_key(&self, key: &str) -> bool {
        match key {
            "listen" => self.file.listen.is_none(),
            "upstream" => self.file.upstream.is_none(),
            "admin_listen" => self.file.admin_listen.is_none(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOVA: &str = "[keystone_authtoken]\nauth_url = http://127.0.0.1:5000/v3\n\
        auth_type = password\nusername = nova\npassword = secret\nuser_domain_name = Default\n\
        project_name = service\nproject_domain_name = Default\n";

    #[test]
    fn oslo_file_and_command_line_make_a_complete_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nova = d.join("nova.conf");
        std::fs::write(&nova, NOVA).unwrap();
        let sources = Sources {
            oslo: vec![nova],
            listen: Some("127.0.0.1:8774".into()),
            upstream: Some("http://127.0.0.1:18774".into()),
            admin_listen: Some("127.0.0.1:9901".into()),
            ..Sources::default()
        };
        let s = sources.build(&|_| None).unwrap();
        assert_eq!(s.proxy.listen.port(), 8774);
        assert_eq!(s.keystone.auth_url.to_string(), "http://127.0.0.1:5000/v3");
    }

    #[test]
    fn a_key_from_two_sources_is_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nova = d.join("nova.conf");
        std::fs::write(&nova, NOVA).unwrap();
        let toml = d.join("stonegate.toml");
        std::fs::write(
            &toml,
            "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n\
             admin_listen = \"127.0.0.1:3\"\n[keystone_authtoken]\nusername = \"other\"\n\
             circuit_breaker_threshold = 9\n",
        )
        .unwrap();
        let sources = Sources {
            toml: Some(toml.clone()),
            oslo: vec![nova.clone()],
            ..Sources::default()
        };
        let Err(Error::Invalid(p)) = sources.load() else {
            panic!("expected a conflict")
        };
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "keystone_authtoken.username");
        assert!(p[0].message.contains("nova.conf:4"), "{}", p[0].message);
        // Without the conflict the TOML adds its stonegate-only keys.
        std::fs::write(
            &toml,
            "listen = \"127.0.0.1:1\"\nupstream = \"http://127.0.0.1:2\"\n\
             admin_listen = \"127.0.0.1:3\"\n[keystone_authtoken]\ncircuit_breaker_threshold = 9\n",
        )
        .unwrap();
        let loaded = sources.load().unwrap();
        assert_eq!(loaded.file.keystone_authtoken.circuit_breaker_threshold, 9);
        assert_eq!(
            loaded.file.keystone_authtoken.username.as_deref(),
            Some("nova")
        );
    }

    #[test]
    fn build_problems_point_at_the_imported_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nova = d.join("nova.conf");
        std::fs::write(&nova, format!("{NOVA}interface = sideways\n")).unwrap();
        let sources = Sources {
            oslo: vec![nova],
            listen: Some("127.0.0.1:8774".into()),
            upstream: Some("http://127.0.0.1:18774".into()),
            admin_listen: Some("127.0.0.1:9901".into()),
            ..Sources::default()
        };
        let Err(Error::Invalid(p)) = sources.build(&|_| None) else {
            panic!("expected a problem")
        };
        let p = p
            .iter()
            .find(|p| p.key == "keystone_authtoken.interface")
            .unwrap();
        assert!(
            p.message
                .contains("nova.conf:9 [keystone_authtoken] interface"),
            "{}",
            p.message
        );
    }

    #[test]
    fn token_cache_time_minus_one_caches_nothing_through_oslo_config() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nova = d.join("nova.conf");
        std::fs::write(&nova, format!("{NOVA}token_cache_time = -1\n")).unwrap();
        let sources = Sources {
            oslo: vec![nova],
            listen: Some("127.0.0.1:8774".into()),
            upstream: Some("http://127.0.0.1:18774".into()),
            admin_listen: Some("127.0.0.1:9901".into()),
            ..Sources::default()
        };
        let s = sources.build(&|_| None).unwrap();
        assert_eq!(s.auth.token_cache_time, std::time::Duration::ZERO);
    }

    #[test]
    fn an_oslo_file_alone_is_told_to_pass_the_process_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let nova = dir.path().join("nova.conf");
        std::fs::write(&nova, NOVA).unwrap();
        let sources = Sources {
            oslo: vec![nova],
            ..Sources::default()
        };
        let Err(Error::Invalid(p)) = sources.build(&|_| None) else {
            panic!("expected problems")
        };
        for (key, flag) in [
            ("listen", "--listen"),
            ("upstream", "--upstream"),
            ("admin_listen", "--admin-listen"),
        ] {
            let p = p.iter().find(|p| p.key == key).expect(key);
            assert!(p.message.contains(flag), "{key}: {}", p.message);
        }
    }
}
