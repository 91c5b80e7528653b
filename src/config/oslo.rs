//! Reading an existing OpenStack service's `[keystone_authtoken]` section:
//! oslo.config INI files (`nova.conf`) and paste.deploy filter sections
//! (`api-paste.ini`), with keystonemiddleware's option names, types,
//! deprecated aliases and precedence, turned into stonegate's
//! `[keystone_authtoken]` table.
//!
//! Every option read is recorded with the file and line it came from, so
//! `stonegate check-config` can explain the result; every option stonegate
//! does not use becomes a warning saying why, and every option whose value
//! would change security behaviour stonegate does not implement is an error
//! (fail closed: `enforce_token_bind = required`, memcached over TLS or SASL).
//!
//! Precedence is keystonemiddleware's: options in the paste filter section
//! override the oslo.config files, and among oslo.config files the later one
//! wins (as repeated `--config-file` arguments do).

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

mod options;

use super::ini::{self, Section};
use super::Problem;
use options::{typed, Use, OPTIONS, PASTE_KEYS, STRUCTURAL};

/// The oslo.config group keystonemiddleware reads.
pub const GROUP: &str = "keystone_authtoken";

/// Whether option `name` holds a secret, whose value is never printed
/// (`check-config` shows `[redacted]`; messages say "its value").
pub fn is_secret(name: &str) -> bool {
    name.contains("password") || name.contains("secret") || name == "admin_token"
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: PathBuf,
    /// The section in that file.
    pub section: String,
    /// 1-based line.
    pub line: usize,
    /// The option name as written (an alias, when it differs from the key).
    pub written_as: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} [{}] {}",
            self.file.display(),
            self.line,
            self.section,
            self.written_as
        )
    }
}

/// The `[keystone_authtoken]` table read from oslo.config / paste files.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    /// stonegate `[keystone_authtoken]` keys and values.
    pub table: toml::Table,
    /// Where each key of `table` came from.
    pub origins: BTreeMap<String, Origin>,
    /// Options read but not used, deprecated spellings, and similar notes.
    pub warnings: Vec<String>,
    /// The files read, in precedence order (lowest first).
    pub files: Vec<PathBuf>,
}

impl Imported {
    /// The origin of a problem's key (`keystone_authtoken.<key>`), if the key
    /// was imported.
    pub fn origin_of(&self, problem_key: &str) -> Option<&Origin> {
        let key = problem_key.strip_prefix(GROUP)?.strip_prefix('.')?;
        self.origins.get(key)
    }
}

/// One file's options for the group, with their origins.
struct Layer {
    file: PathBuf,
    section: Section,
    /// The whole file, for `auth_section` and `$group.option` references.
    all: Vec<Section>,
}

/// Reads `paths` (oslo.config files and/or paste.deploy files) into a
/// `[keystone_authtoken]` table. Problems name the option and its origin.
pub fn import(paths: &[PathBuf]) -> Result<Imported, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut oslo_layers = Vec::new();
    let mut paste_layers = Vec::new();
    for path in paths {
        let sections = match read(path) {
            Ok(s) => s,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        let filters: Vec<&Section> = sections
            .iter()
            .filter(|s| is_auth_token_filter(s))
            .collect();
        if filters.len() > 1 {
            let names: Vec<&str> = filters.iter().map(|s| s.name.as_str()).collect();
            problems.push(problem_at(
                path,
                &format!(
                    "has {} keystonemiddleware auth_token filter sections ({}); keep one",
                    filters.len(),
                    names.join(", ")
                ),
            ));
            continue;
        }
        if let Some(filter) = filters.first() {
            // A paste filter may point at the service's oslo.config file.
            if let Some(base) = linked_oslo_file(path, filter, &mut problems) {
                match read(&base) {
                    Ok(all) => push_group(&mut oslo_layers, base, all),
                    Err(p) => problems.push(p),
                }
            }
            paste_layers.push(Layer {
                file: path.clone(),
                section: Section {
                    name: filter.name.clone(),
                    entries: filter
                        .entries
                        .iter()
                        .filter(|e| !PASTE_KEYS.contains(&e.key.as_str()))
                        .cloned()
                        .collect(),
                },
                all: sections.clone(),
            });
        } else if sections.iter().any(|s| s.name == GROUP) {
            push_group(&mut oslo_layers, path.clone(), sections);
        } else {
            problems.push(problem_at(
                path,
                &format!(
                    "has neither a [{GROUP}] section nor a paste filter section for \
                     keystonemiddleware.auth_token"
                ),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut imported = Imported::default();
    let layers: Vec<Layer> = oslo_layers.into_iter().chain(paste_layers).collect();
    imported.files = layers.iter().map(|l| l.file.clone()).collect();
    // The effective value of every option name: later layers win.
    let mut effective: BTreeMap<String, (String, Origin)> = BTreeMap::new();
    for layer in &layers {
        let auth_section = layer
            .section
            .last("auth_section")
            .map(|e| e.value.trim().to_owned());
        let mut sections = vec![&layer.section];
        if let Some(name) = &auth_section {
            match layer.all.iter().find(|s| &s.name == name) {
                Some(s) => sections.push(s),
                None => problems.push(Problem {
                    key: format!("{GROUP}.auth_section"),
                    message: format!(
                        "names [{name}], which {} does not have",
                        layer.file.display()
                    ),
                }),
            }
        }
        for section in sections {
            for entry in &section.entries {
                let value = match substitute(&entry.value, &section.name, &layer.all) {
                    Ok(v) => v,
                    Err(why) => {
                        problems.push(Problem {
                            key: format!("{GROUP}.{}", entry.key),
                            message: format!("{why} ({}:{})", layer.file.display(), entry.line),
                        });
                        continue;
                    }
                };
                let origin = Origin {
                    file: layer.file.clone(),
                    section: section.name.clone(),
                    line: entry.line,
                    written_as: entry.key.clone(),
                };
                effective.insert(entry.key.clone(), (value, origin));
            }
        }
    }
    convert(&effective, &mut imported, &mut problems);
    if problems.is_empty() {
        Ok(imported)
    } else {
        Err(problems)
    }
}

fn push_group(layers: &mut Vec<Layer>, file: PathBuf, all: Vec<Section>) {
    let section = all
        .iter()
        .find(|s| s.name == GROUP)
        .cloned()
        .unwrap_or_else(|| Section {
            name: GROUP.into(),
            entries: Vec::new(),
        });
    layers.push(Layer { file, section, all });
}

fn read(path: &Path) -> Result<Vec<Section>, Problem> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| problem_at(path, &format!("cannot be read: {e}")))?;
    ini::parse(&text).map_err(|e| problem_at(path, &e.to_string()))
}

fn problem_at(path: &Path, message: &str) -> Problem {
    Problem {
        key: format!("--oslo-config {}", path.display()),
        message: message.to_owned(),
    }
}

/// A paste.deploy `[filter:...]` section that builds keystonemiddleware's
/// auth_token (`paste.filter_factory = keystonemiddleware.auth_token:filter_factory`
/// or `use = egg:keystonemiddleware#auth_token`).
fn is_auth_token_filter(s: &Section) -> bool {
    if !s.name.starts_with("filter:") {
        return false;
    }
    let factory = s
        .last("paste.filter_factory")
        .is_some_and(|e| e.value.trim() == "keystonemiddleware.auth_token:filter_factory");
    let egg = s.last("use").is_some_and(|e| {
        let v = e.value.trim();
        v == "egg:keystonemiddleware#auth_token"
    });
    factory || egg
}

/// The oslo.config file a paste filter names (`oslo_config_file`, relative
/// to the paste file, or `/etc/<project>/<project>.conf` for
/// `oslo_config_project`), if any.
fn linked_oslo_file(
    paste: &Path,
    filter: &Section,
    problems: &mut Vec<Problem>,
) -> Option<PathBuf> {
    if let Some(e) = filter.last("oslo_config_file") {
        let p = PathBuf::from(e.value.trim());
        let p = if p.is_relative() {
            paste.parent().map_or(p.clone(), |d| d.join(&p))
        } else {
            p
        };
        return Some(p);
    }
    let project = filter.last("oslo_config_project")?;
    let project = project.value.trim();
    let p = PathBuf::from(format!("/etc/{project}/{project}.conf"));
    if p.is_file() {
        Some(p)
    } else {
        problems.push(problem_at(
            paste,
            &format!(
                "[{}] oslo_config_project = {project}, but {} does not exist; \
                 set oslo_config_file or pass the file with --oslo-config",
                filter.name,
                p.display()
            ),
        ));
        None
    }
}

/// How deep `$` references may nest (oslo.config recurses until Python's
/// stack ends; a loop is refused here).
const MAX_SUBSTITUTION_DEPTH: usize = 16;

/// oslo.config value substitution (`ConfigOpts._substitute`, a
/// `string.Template` with `idpattern = [_a-z][._a-z0-9]*`, case-insensitive):
/// `$$` (or `\$`) is a `$`; `$name` / `${name}` the option `name` of the
/// value's own section `group`, else of `[DEFAULT]`; `$g.name` / `${g.name}`
/// the option `name` of section `g`. A referenced value is substituted in
/// turn, in its own section. Where oslo.config leaves a `$` that starts no
/// name as it is, stonegate refuses the value (fail closed: it cannot tell
/// a typo from a literal).
fn substitute(value: &str, group: &str, all: &[Section]) -> Result<String, String> {
    substitute_in(value, group, all, 0)
}

fn substitute_in(
    value: &str,
    group: &str,
    all: &[Section],
    depth: usize,
) -> Result<String, String> {
    if !value.contains('$') {
        return Ok(value.to_owned());
    }
    if depth > MAX_SUBSTITUTION_DEPTH {
        return Err("has `$` references that nest too deep (or refer to themselves)".into());
    }
    let escaped;
    let value = if value.contains("\\$") {
        escaped = value.replace("\\$", "$$");
        escaped.as_str()
    } else {
        value
    };
    let is_name = |n: &str| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
            && c.all(|x| x == '_' || x == '.' || x.is_ascii_alphanumeric())
    };
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (name, tail) = if let Some(r) = rest.strip_prefix('{') {
            // The value may be a secret: the message never repeats it.
            let end = r
                .find('}')
                .ok_or_else(|| "has an unterminated ${...}".to_owned())?;
            (&r[..end], &r[end + 1..])
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if !is_name(name) {
            return Err(
                "a lone `$` in a value must be written `$$` (oslo.config substitution)".into(),
            );
        }
        let lookup = |g: &str, opt: &str| {
            all.iter()
                .find(|s| s.name == g)
                .and_then(|s| s.last(opt))
                .map(|e| (g.to_owned(), e.value.clone()))
        };
        let found = match name.split_once('.') {
            Some((g, opt)) => lookup(g, opt),
            None => lookup(group, name),
        }
        .or_else(|| lookup("DEFAULT", name));
        let (found_group, found) = found.ok_or_else(|| {
            let (g, opt) = name.split_once('.').unwrap_or((group, name));
            format!("refers to ${{{g}.{opt}}}, which is not set (write `$$` for a literal `$`)")
        })?;
        out.push_str(&substitute_in(&found, &found_group, all, depth + 1)?);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// A section's name and its `(key, value)` entries, in file order.
#[doc(hidden)]
pub type RawSection = (String, Vec<(String, String)>);

/// The sections of INI text as oslo.config's parser reads them: each name
/// with its `(key, value)` entries in file order (values unquoted,
/// continuation lines joined, no substitution). For the `oslo_ini` fuzz
/// target; not API.
#[doc(hidden)]
pub fn sections(text: &str) -> Result<Vec<RawSection>, String> {
    let all = ini::parse(text).map_err(|e| e.to_string())?;
    Ok(all
        .into_iter()
        .map(|s| {
            (
                s.name,
                s.entries.into_iter().map(|e| (e.key, e.value)).collect(),
            )
        })
        .collect())
}

/// Every `[keystone_authtoken]` value of oslo.config file `text` as the
/// import reads it: `$` substitution applied, the last of a repeated key
/// winning; each value `Err` with why it was refused. `Err`: the INI syntax.
/// For the golden test against oslo.config and the `oslo_ini` fuzz target;
/// not API.
#[doc(hidden)]
pub fn group_values(text: &str) -> Result<BTreeMap<String, Result<String, String>>, String> {
    let all = ini::parse(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    if let Some(section) = all.iter().find(|s| s.name == GROUP) {
        for e in &section.entries {
            out.insert(e.key.clone(), substitute(&e.value, GROUP, &all));
        }
    }
    Ok(out)
}

/// Typed conversion of the effective values into stonegate keys.
fn convert(
    effective: &BTreeMap<String, (String, Origin)>,
    imported: &mut Imported,
    problems: &mut Vec<Problem>,
) {
    // Canonical option → (value, origin): the canonical name beats an alias
    // when both are set (oslo.config's rule).
    for opt in OPTIONS {
        let chosen = std::iter::once(opt.name)
            .chain(opt.aliases.iter().copied())
            .find_map(|n| effective.get(n));
        let Some((raw, origin)) = chosen else {
            continue;
        };
        if origin.written_as != opt.name {
            imported
                .warnings
                .push(format!("{origin}: deprecated name, read as {}", opt.name));
        }
        for alias in opt.aliases {
            if let Some((_, shadowed)) = effective.get(*alias) {
                if shadowed != origin {
                    imported.warnings.push(format!(
                        "{shadowed}: ignored, {} is also set ({origin})",
                        opt.name
                    ));
                }
            }
        }
        // A secret's value is never repeated in a message.
        let shown = if is_secret(opt.name) {
            "its value".to_owned()
        } else {
            format!("{raw:?}")
        };
        match opt.usage {
            Use::Ignore(why) => {
                imported.warnings.push(format!("{origin}: ignored: {why}"));
            }
            Use::Only(allowed, why) => {
                let v = raw.trim().to_ascii_lowercase();
                if v.is_empty() || allowed.contains(&v.as_str()) {
                    imported.warnings.push(format!(
                        "{origin}: ignored ({shown} needs nothing from stonegate)"
                    ));
                } else {
                    problems.push(Problem {
                        key: format!("{GROUP}.{}", opt.name),
                        message: format!("{shown} cannot be honoured: {why} ({origin})"),
                    });
                }
            }
            Use::Pass(key) => match typed(opt.kind, raw) {
                Ok(None) => {}
                Ok(Some(value)) => {
                    imported.table.insert(key.to_owned(), value);
                    imported.origins.insert(key.to_owned(), origin.clone());
                }
                Err(why) => problems.push(Problem {
                    key: format!("{GROUP}.{}", opt.name),
                    message: format!("{shown} {why} ({origin})"),
                }),
            },
        }
    }
    structural(effective, imported);
    // auth_type spellings keystoneauth accepts for the same plugins.
    if let Some(toml::Value::String(t)) = imported.table.get_mut("auth_type") {
        if t == "v3password" {
            "password".clone_into(t);
        }
    }
    let known = |k: &str| {
        STRUCTURAL.contains(&k)
            || OPTIONS
                .iter()
                .any(|o| o.name == k || o.aliases.contains(&k))
    };
    for (name, (_, origin)) in effective {
        if !known(name) {
            imported.warnings.push(format!(
                "{origin}: ignored: not a keystonemiddleware or keystoneauth option stonegate knows"
            ));
        }
    }
}

/// `default_domain_*`, and `auth_host`/`auth_port`/`auth_protocol` (the
/// pre-keystoneauth way to name Keystone).
fn structural(effective: &BTreeMap<String, (String, Origin)>, imported: &mut Imported) {
    let get = |names: &[&str]| names.iter().find_map(|n| effective.get(*n));
    for (default, suffix) in [
        (get(&["default_domain_id", "default-domain-id"]), "id"),
        (get(&["default_domain_name", "default-domain-name"]), "name"),
    ] {
        let Some((value, origin)) = default else {
            continue;
        };
        default_domains(imported, suffix, value, origin);
    }
    // Legacy: the admin_* credentials authenticated in the default domain.
    if let (Some((_, origin)), false) = (
        effective.get("admin_user"),
        effective.contains_key("username"),
    ) {
        default_domains(imported, "id", "default", origin);
    }
    let host = effective.get("auth_host");
    if !imported.table.contains_key("auth_url") {
        if let Some((h, origin)) = host {
            let port = effective
                .get("auth_port")
                .map_or("35357", |(v, _)| v.trim());
            let proto = effective
                .get("auth_protocol")
                .map_or("https", |(v, _)| v.trim());
            let prefix = effective
                .get("auth_admin_prefix")
                .map_or("", |(v, _)| v.trim().trim_matches('/'));
            let mut url = format!("{proto}://{}:{port}", h.trim());
            if !prefix.is_empty() {
                url.push('/');
                url.push_str(prefix);
            }
            imported.warnings.push(format!(
                "{origin}: deprecated auth_host/auth_port/auth_protocol, read as auth_url = {url}"
            ));
            imported
                .table
                .insert("auth_url".into(), toml::Value::String(url));
            imported.origins.insert("auth_url".into(), origin.clone());
        }
    } else if let Some((_, origin)) = host {
        imported
            .warnings
            .push(format!("{origin}: ignored: auth_url is set"));
    }
}

/// keystoneauth's `default_domain_*`: the user's and the project's domain
/// (`<who>_domain_<suffix>`) where neither its id nor its name is set.
fn default_domains(imported: &mut Imported, suffix: &str, value: &str, origin: &Origin) {
    for who in ["user", "project"] {
        let set = ["id", "name"]
            .iter()
            .any(|s| imported.table.contains_key(&format!("{who}_domain_{s}")));
        if !set {
            let key = format!("{who}_domain_{suffix}");
            imported
                .table
                .insert(key.clone(), toml::Value::String(value.to_owned()));
            imported.origins.insert(key, origin.clone());
        }
    }
}

#[cfg(test)]
mod tests;
