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

use super::ini::{self, Section};
use super::Problem;

/// The oslo.config group keystonemiddleware reads.
pub const GROUP: &str = "keystone_authtoken";

/// How an oslo.config value is typed (`cfg.StrOpt`, `BoolOpt`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
    List,
}

/// What stonegate does with an option.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// Becomes `[keystone_authtoken].<key>`.
    Pass(&'static str),
    /// Not used; the reason is given as a warning when the option is set.
    Ignore(&'static str),
    /// Accepted (and ignored) only with one of these values (compared
    /// case-insensitively); any other value is an error with the reason.
    Only(&'static [&'static str], &'static str),
}

/// One option keystonemiddleware (or keystoneauth's loader) reads.
struct Opt {
    name: &'static str,
    /// Deprecated names still read, oldest spelling last.
    aliases: &'static [&'static str],
    kind: Kind,
    usage: Use,
}

const FALSE: &[&str] = &["false", "0", "no", "off", "f", "n"];

macro_rules! opt {
    ($name:literal, $kind:ident, $usage:expr) => {
        opt!($name, [], $kind, $usage)
    };
    ($name:literal, [$($alias:literal),*], $kind:ident, $usage:expr) => {
        Opt { name: $name, aliases: &[$($alias),*], kind: Kind::$kind, usage: $usage }
    };
}

/// keystonemiddleware's `auth_token/_opts.py`, keystoneauth's password and
/// application-credential plugin options, and the pre-keystoneauth options
/// (`admin_user`, `identity_uri`, ...) older deployments still carry.
const OPTIONS: &[Opt] = &[
    // keystonemiddleware
    opt!("www_authenticate_uri", ["auth_uri"], Str, Use::Pass("www_authenticate_uri")),
    opt!("auth_version", Str, Use::Pass("auth_version")),
    opt!("interface", Str, Use::Pass("interface")),
    opt!("delay_auth_decision", Bool, Use::Pass("delay_auth_decision")),
    opt!("http_connect_timeout", Int, Use::Pass("http_connect_timeout")),
    opt!("http_request_max_retries", Int, Use::Pass("http_request_max_retries")),
    opt!("cache", Str, Use::Ignore("it names a Swift WSGI environment cache; stonegate runs outside Swift and keeps its own cache")),
    opt!("certfile", Str, Use::Pass("certfile")),
    opt!("keyfile", Str, Use::Pass("keyfile")),
    opt!("cafile", Str, Use::Pass("cafile")),
    opt!("insecure", Bool, Use::Pass("insecure")),
    opt!("region_name", Str, Use::Pass("region_name")),
    opt!("memcached_servers", ["memcache_servers"], List, Use::Pass("memcached_servers")),
    opt!("token_cache_time", Int, Use::Pass("token_cache_time")),
    opt!("memcache_security_strategy", Str, Use::Pass("memcache_security_strategy")),
    opt!("memcache_secret_key", Str, Use::Pass("memcache_secret_key")),
    opt!("memcache_tls_enabled", Bool, Use::Only(FALSE, "memcached over TLS is not supported; stonegate will not fall back to plain TCP")),
    opt!("memcache_tls_cafile", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_tls_certfile", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_tls_keyfile", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_tls_allowed_ciphers", Str, Use::Ignore("memcached over TLS is not supported")),
    opt!("memcache_pool_dead_retry", Int, Use::Pass("memcache_pool_dead_retry")),
    opt!("memcache_pool_maxsize", Int, Use::Pass("memcache_pool_maxsize")),
    opt!("memcache_pool_socket_timeout", Int, Use::Pass("memcache_pool_socket_timeout")),
    opt!("memcache_pool_unused_timeout", Int, Use::Ignore("connections to memcached are kept while in use; idle ones are closed by the pool")),
    opt!("memcache_pool_conn_get_timeout", Int, Use::Ignore("stonegate never waits for a cache connection: a busy pool opens another one or skips the cache")),
    opt!("memcache_use_advanced_pool", Bool, Use::Ignore("stonegate's cache client is always pooled")),
    opt!("include_service_catalog", Bool, Use::Pass("include_service_catalog")),
    opt!("enforce_token_bind", Str, Use::Only(&["disabled", "permissive"], "token binding (kerberos/x509) is not implemented; a required binding cannot be enforced")),
    opt!("service_token_roles", List, Use::Pass("service_token_roles")),
    opt!("service_token_roles_required", Bool, Use::Pass("service_token_roles_required")),
    opt!("service_type", Str, Use::Pass("service_type")),
    opt!("memcache_sasl_enabled", Bool, Use::Only(FALSE, "SASL authentication to memcached is not supported")),
    opt!("memcache_username", Str, Use::Ignore("SASL authentication to memcached is not supported")),
    opt!("memcache_password", Str, Use::Ignore("SASL authentication to memcached is not supported")),
    // keystoneauth: loader options and the password / application-credential plugins
    opt!("auth_type", ["auth_plugin"], Str, Use::Pass("auth_type")),
    opt!("auth_url", ["identity_uri"], Str, Use::Pass("auth_url")),
    opt!("username", ["user_name", "user-name", "admin_user"], Str, Use::Pass("username")),
    opt!("user_id", ["user-id"], Str, Use::Pass("user_id")),
    opt!("password", ["admin_password"], Str, Use::Pass("password")),
    opt!("user_domain_id", ["user-domain-id"], Str, Use::Pass("user_domain_id")),
    opt!("user_domain_name", ["user-domain-name"], Str, Use::Pass("user_domain_name")),
    opt!("project_id", ["tenant_id", "tenant-id"], Str, Use::Pass("project_id")),
    opt!("project_name", ["tenant_name", "tenant-name", "admin_tenant_name"], Str, Use::Pass("project_name")),
    opt!("project_domain_id", ["project-domain-id"], Str, Use::Pass("project_domain_id")),
    opt!("project_domain_name", ["project-domain-name"], Str, Use::Pass("project_domain_name")),
    opt!("application_credential_id", Str, Use::Pass("application_credential_id")),
    opt!("application_credential_secret", Str, Use::Pass("application_credential_secret")),
    opt!("application_credential_name", Str, Use::Only(&[], "look-up by name is not supported; set application_credential_id")),
    opt!("trust_id", Str, Use::Only(&[], "a trust-scoped service token is not supported")),
    opt!("domain_id", Str, Use::Only(&[], "a domain-scoped service token is not supported; scope it to a project")),
    opt!("domain_name", Str, Use::Only(&[], "a domain-scoped service token is not supported; scope it to a project")),
    opt!("system_scope", Str, Use::Only(&[], "a system-scoped service token is not supported; scope it to a project")),
    opt!("admin_token", Str, Use::Only(&[], "a static admin token is insecure and not supported; configure a service user")),
    opt!("timeout", Int, Use::Ignore("stonegate bounds Keystone requests with http_connect_timeout and its own http_request_timeout")),
    opt!("collect_timing", Bool, Use::Ignore("stonegate measures Keystone calls in its metrics")),
    opt!("split_loggers", Bool, Use::Ignore("stonegate logs through its own subscriber")),
    opt!("auth_admin_prefix", Str, Use::Ignore("only used to build auth_url from auth_host; set auth_url")),
];

/// The options consumed specially: they shape other options rather than
/// being copied (`auth_section`, `default_domain_*`, `auth_host`/`port`/`protocol`).
const STRUCTURAL: &[&str] = &[
    "auth_section",
    "default_domain_id",
    "default_domain_name",
    "default-domain-id",
    "default-domain-name",
    "auth_host",
    "auth_port",
    "auth_protocol",
];

/// Paste.deploy keys of a filter section that are not middleware options.
const PASTE_KEYS: &[&str] = &[
    "paste.filter_factory",
    "paste.filter_app_factory",
    "use",
    "here",
    "__file__",
    "configkey",
    "oslo_config_project",
    "oslo_config_file",
    "oslo_config_config",
];

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
                let value = match substitute(&entry.value, &layer.all) {
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

/// oslo.config value substitution: `$$` is a `$`, `$name` / `${name}` the
/// `[DEFAULT]` option `name`, `${group.name}` an option of another section.
fn substitute(value: &str, all: &[Section]) -> Result<String, String> {
    if !value.contains('$') {
        return Ok(value.to_owned());
    }
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
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        if name.is_empty() {
            return Err(
                "a lone `$` in a value must be written `$$` (oslo.config substitution)".into(),
            );
        }
        let (group, opt) = name.split_once('.').unwrap_or(("DEFAULT", name));
        let found = all
            .iter()
            .find(|s| s.name == group)
            .and_then(|s| s.last(opt))
            .ok_or_else(|| {
                format!(
                    "refers to ${{{group}.{opt}}}, which is not set (write `$$` for a literal `$`)"
                )
            })?;
        out.push_str(&found.value);
        rest = tail;
    }
    out.push_str(rest);
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

/// oslo.config's types: `Ok(None)` for an empty value of a non-string option
/// (oslo treats it as unset).
fn typed(kind: Kind, raw: &str) -> Result<Option<toml::Value>, &'static str> {
    let v = raw.trim();
    Ok(Some(match kind {
        Kind::Str => toml::Value::String(raw.to_owned()),
        Kind::Bool if v.is_empty() => return Ok(None),
        Kind::Bool => match v.to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => toml::Value::Boolean(true),
            "0" | "f" | "false" | "off" | "n" | "no" => toml::Value::Boolean(false),
            _ => return Err("is not a boolean (true/false, yes/no, on/off, 1/0)"),
        },
        Kind::Int if v.is_empty() => return Ok(None),
        Kind::Int => toml::Value::Integer(v.parse().map_err(|_| "is not an integer")?),
        Kind::List => {
            let inner = v
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .unwrap_or(v);
            toml::Value::Array(
                inner
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            )
        }
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn nova_style_section_becomes_the_table_with_origins() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = write(
            d,
            "nova.conf",
            "[DEFAULT]\nmy_ip = 10.0.0.5\n\n[keystone_authtoken]\n\
             auth_uri = http://$my_ip:5000\nauth_url = http://keystone:5000/v3\n\
             auth_plugin = v3password\nusername = nova\npassword = pa$$word\n\
             project_name = service\ndefault_domain_name = Default\n\
             delay_auth_decision = Yes\nservice_token_roles = service, admin\n\
             token_cache_time = 600\nmemcached_servers = 10.0.0.1:11211\n\
             enforce_token_bind = permissive\nfrobnicate = 3\n",
        );
        let i = import(std::slice::from_ref(&f)).unwrap();
        let t = &i.table;
        assert_eq!(
            t["www_authenticate_uri"].as_str(),
            Some("http://10.0.0.5:5000")
        );
        assert_eq!(t["auth_type"].as_str(), Some("password"));
        assert_eq!(t["password"].as_str(), Some("pa$word"));
        assert_eq!(t["user_domain_name"].as_str(), Some("Default"));
        assert_eq!(t["project_domain_name"].as_str(), Some("Default"));
        assert_eq!(t["delay_auth_decision"].as_bool(), Some(true));
        assert_eq!(t["token_cache_time"].as_integer(), Some(600));
        let roles: Vec<_> = t["service_token_roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(roles, ["service", "admin"]);
        let o = i
            .origin_of("keystone_authtoken.www_authenticate_uri")
            .unwrap();
        assert_eq!((o.line, o.written_as.as_str()), (5, "auth_uri"));
        let w = i.warnings.join("\n");
        assert!(
            w.contains("auth_uri: deprecated name, read as www_authenticate_uri"),
            "{w}"
        );
        assert!(w.contains("frobnicate: ignored"), "{w}");
        assert!(w.contains("enforce_token_bind: ignored"), "{w}");
        // The result is a valid stonegate [keystone_authtoken] table.
        let mut file = toml::Table::new();
        file.insert("listen".into(), "127.0.0.1:1".into());
        file.insert("upstream".into(), "http://127.0.0.1:2".into());
        file.insert(GROUP.into(), toml::Value::Table(i.table.clone()));
        let parsed: super::super::File = toml::Value::Table(file).try_into().unwrap();
        assert_eq!(parsed.keystone_authtoken.username.as_deref(), Some("nova"));
    }

    #[test]
    fn paste_filter_overrides_the_oslo_file_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "glance-api.conf",
            "[keystone_authtoken]\nauth_url = http://a:5000\nusername = glance\ninterface = public\n",
        );
        let paste = write(
            d,
            "glance-api-paste.ini",
            "[pipeline:main]\npipeline = authtoken app\n\n[filter:authtoken]\n\
             paste.filter_factory = keystonemiddleware.auth_token:filter_factory\n\
             oslo_config_file = glance-api.conf\ninterface = admin\n",
        );
        let i = import(&[paste]).unwrap();
        assert_eq!(i.table["interface"].as_str(), Some("admin"));
        assert_eq!(i.table["username"].as_str(), Some("glance"));
        assert_eq!(i.files.len(), 2);
        assert_eq!(i.origins["interface"].section, "filter:authtoken");
    }

    #[test]
    fn later_files_win_and_canonical_names_beat_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = write(
            d,
            "a.conf",
            "[keystone_authtoken]\nusername = one\ntenant_name = t\nproject_name = p\n",
        );
        let b = write(d, "b.conf", "[keystone_authtoken]\nusername = two\n");
        let i = import(&[a, b]).unwrap();
        assert_eq!(i.table["username"].as_str(), Some("two"));
        assert_eq!(i.table["project_name"].as_str(), Some("p"));
        assert!(i
            .warnings
            .iter()
            .any(|w| w.contains("tenant_name: ignored, project_name is also set")));
    }

    #[test]
    fn security_relevant_values_it_cannot_honour_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = write(
            d,
            "x.conf",
            "[keystone_authtoken]\nenforce_token_bind = required\nmemcache_tls_enabled = true\n\
             admin_token = ADMIN\ndelay_auth_decision = maybe\n",
        );
        let p = import(&[f]).unwrap_err();
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert!(
            keys.contains(&"keystone_authtoken.enforce_token_bind"),
            "{p:?}"
        );
        assert!(
            keys.contains(&"keystone_authtoken.memcache_tls_enabled"),
            "{p:?}"
        );
        assert!(keys.contains(&"keystone_authtoken.admin_token"), "{p:?}");
        assert!(
            keys.contains(&"keystone_authtoken.delay_auth_decision"),
            "{p:?}"
        );
        assert!(p.iter().all(|p| p.message.contains("x.conf:")), "{p:?}");
        assert!(
            p.iter().all(|p| !p.message.contains("ADMIN")),
            "a secret was repeated: {p:?}"
        );
    }

    #[test]
    fn legacy_admin_options_and_auth_host_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = write(
            d,
            "old.conf",
            "[keystone_authtoken]\nauth_host = 10.1.1.1\nauth_port = 35357\nauth_protocol = http\n\
             admin_user = nova\nadmin_password = secret\nadmin_tenant_name = service\n\
             auth_version = v2.0\n",
        );
        let i = import(&[f]).unwrap();
        assert_eq!(i.table["auth_url"].as_str(), Some("http://10.1.1.1:35357"));
        assert_eq!(i.table["username"].as_str(), Some("nova"));
        assert_eq!(i.table["project_name"].as_str(), Some("service"));
        assert_eq!(i.table["user_domain_id"].as_str(), Some("default"));
        assert_eq!(i.table["project_domain_id"].as_str(), Some("default"));
        assert_eq!(i.table["auth_version"].as_str(), Some("v2.0"));
    }

    #[test]
    fn auth_section_and_missing_sections_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = write(
            d,
            "s.conf",
            "[keystone_authtoken]\nauth_section = svc_auth\n[svc_auth]\nauth_url = http://k:5000\nusername = svc\n",
        );
        let i = import(&[f]).unwrap();
        assert_eq!(i.table["username"].as_str(), Some("svc"));
        assert_eq!(i.origins["username"].section, "svc_auth");
        let g = write(d, "none.conf", "[DEFAULT]\nx = 1\n");
        let p = import(&[g]).unwrap_err();
        assert!(p[0].message.contains("neither"), "{p:?}");
        let h = write(d, "bad.conf", "[keystone_authtoken]\npassword = a$\n");
        let p = import(&[h]).unwrap_err();
        assert_eq!(p[0].key, "keystone_authtoken.password");
        let h = write(
            d,
            "bad2.conf",
            "[keystone_authtoken]\npassword = s3cr${et\n",
        );
        let p = import(&[h]).unwrap_err();
        assert!(!p[0].message.contains("s3cr"), "{p:?}");
    }
}
