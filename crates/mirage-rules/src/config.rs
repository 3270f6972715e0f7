//! The rule file (TOML) and its compilation into a [`RuleSet`].
//!
//! ```toml
//! [whitelist]
//! cidrs = ["10.0.0.0/8"]          # sources that never get a decision
//!
//! [[rule]]
//! name = "ssh-bruteforce-account"
//! severity = "high"
//! service = ["ssh"]
//! kind = ["auth.attempt"]
//! group_by = ["src_ip", "username", "host"]
//! fields = { result = "^failure$" }
//! threshold = { count = 5, window = "2m" }
//! action = { decision = "deceive", ttl = "4h" }
//! ```
//!
//! Every error (TOML syntax, unknown key, bad regex, unknown field name,
//! bad duration or CIDR) is reported with the line and column where it is,
//! so an operator can fix a reloaded file while the old rules keep running.

use std::collections::BTreeMap;
use std::ops::Range;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::cidr::Cidr;
use crate::observation::{Field, Origin};

/// The whole rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Sources that never get a decision (and are not even tracked).
    #[serde(default)]
    pub whitelist: WhitelistDef,
    /// Memory bounds.
    #[serde(default)]
    pub limits: LimitsDef,
    /// The rules, evaluated in order; every matching rule counts.
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleDef>,
}

/// `[whitelist]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhitelistDef {
    /// CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses. IPv4-mapped
    /// IPv6 sources are matched as IPv4. Default: empty.
    #[serde(default)]
    pub cidrs: Vec<Spanned<String>>,
}

/// `[limits]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDef {
    /// Most group keys (e.g. source addresses) one rule tracks at a time.
    /// When a new key arrives at the cap, the key updated least recently is
    /// forgotten (its partial window is lost). Each key costs about 150
    /// bytes plus its window (8 bytes per counted event) and, past 51
    /// bytes, its text. Default 100000.
    #[serde(default = "default_max_keys")]
    pub max_keys_per_rule: usize,
    /// Most decisions active at once; at the cap the one expiring soonest
    /// is dropped early to make room. Default 1000000.
    #[serde(default = "default_max_decisions")]
    pub max_active_decisions: usize,
}

fn default_max_keys() -> usize {
    100_000
}

fn default_max_decisions() -> usize {
    1_000_000
}

impl Default for LimitsDef {
    fn default() -> Self {
        LimitsDef {
            max_keys_per_rule: default_max_keys(),
            max_active_decisions: default_max_decisions(),
        }
    }
}

/// One `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Unique name, used in decisions and alerts.
    pub name: Spanned<String>,
    /// What the rule detects, for people.
    #[serde(default)]
    pub description: String,
    /// `low`, `medium`, `high` or `critical`. Default `medium`.
    #[serde(default)]
    pub severity: Severity,
    /// Services to match (`ssh`, `ftp`, `redis`, …). Empty: any.
    #[serde(default)]
    pub service: Vec<String>,
    /// Event kinds to match (`auth.attempt`, `command`, …). Empty: any.
    #[serde(default)]
    pub kind: Vec<String>,
    /// `sensor`, `log` or `any` (default).
    #[serde(default)]
    pub origin: OriginDef,
    /// Field name -> regex that must match the field's value (a missing
    /// field does not match). Linear-time `regex` syntax.
    #[serde(default)]
    pub fields: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Field name -> regex that must NOT match (a missing field passes).
    #[serde(default)]
    pub exclude: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Fields whose values together form the key counted by the threshold
    /// (e.g. `["src_ip"]`, `["src_ip", "username", "host"]`). An event
    /// missing one of them is not counted. Default `["src_ip"]`.
    #[serde(default = "default_group_by")]
    pub group_by: Vec<Spanned<String>>,
    /// How many within how long. Default: every matching event fires.
    #[serde(default)]
    pub threshold: ThresholdDef,
    /// What to decide when the threshold is reached. Absent: alert only.
    #[serde(default)]
    pub action: Option<ActionDef>,
}

fn default_group_by() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "src_ip".to_owned())]
}

/// Alert and decision severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Noise worth recording.
    Low,
    /// Suspicious.
    #[default]
    Medium,
    /// An attack.
    High,
    /// An attack with impact (writes, code execution).
    Critical,
}

impl Severity {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "unknown severity '{s}' (low, medium, high, critical)"
                ));
            }
        })
    }
}

/// `origin = "sensor" | "log" | "any"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OriginDef {
    /// Honeypot sensor events only.
    Sensor,
    /// Production log records only.
    Log,
    /// Both.
    #[default]
    Any,
}

/// `threshold = { count = 5, window = "2m", distinct = "dst_port" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdDef {
    /// Events needed (or distinct values, with `distinct`). Default 1.
    #[serde(default = "one")]
    pub count: Spanned<u32>,
    /// Sliding window (`90s`, `2m`, `1h`, `1d`; units s, m, h, d), inclusive:
    /// `count` events whose first and last times differ by at most this
    /// fire. Default `0s` (only meaningful with count 1).
    #[serde(default)]
    pub window: Option<Spanned<String>>,
    /// Count distinct values of this field instead of events (port scans:
    /// `distinct = "dst_port"`).
    #[serde(default)]
    pub distinct: Option<Spanned<String>>,
}

fn one() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

impl Default for ThresholdDef {
    fn default() -> Self {
        ThresholdDef {
            count: one(),
            window: None,
            distinct: None,
        }
    }
}

/// `action = { decision = "deceive", ttl = "4h" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionDef {
    /// `deceive` (steer to a sandbox), `block` (drop), `reflect` (send the
    /// traffic back).
    pub decision: DecisionType,
    /// How long the decision lasts (`30m`, `4h`, `7d`).
    pub ttl: Spanned<String>,
}

/// What to do with a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionType {
    /// Redirect its traffic to a honeypot sandbox.
    Deceive,
    /// Drop its traffic.
    Block,
    /// Send its traffic back to it.
    Reflect,
}

impl DecisionType {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionType::Deceive => "deceive",
            DecisionType::Block => "block",
            DecisionType::Reflect => "reflect",
        }
    }
}

impl std::str::FromStr for DecisionType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "deceive" => DecisionType::Deceive,
            "block" => DecisionType::Block,
            "reflect" => DecisionType::Reflect,
            _ => return Err(format!("unknown decision '{s}' (deceive, block, reflect)")),
        })
    }
}

/// A rule file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct RuleError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl RuleError {
    fn at(text: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, column) = line_col(text, span.start);
        RuleError {
            line,
            column,
            message: message.into(),
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Severity.
    pub severity: Severity,
    pub(crate) services: Vec<String>,
    pub(crate) kinds: Vec<String>,
    pub(crate) origin: Option<Origin>,
    pub(crate) fields: Vec<(Field, Matcher)>,
    pub(crate) exclude: Vec<(Field, Matcher)>,
    pub(crate) group_by: Vec<Field>,
    pub(crate) count: u32,
    pub(crate) window_micros: i64,
    pub(crate) distinct: Option<Field>,
    pub(crate) action: Option<(DecisionType, i64)>,
    /// Text form of everything above, to keep state across reloads only
    /// for rules that did not change.
    pub(crate) signature: String,
}

/// A loaded rule file: rules, whitelist and limits, ready for an
/// [`crate::Engine`].
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) whitelist: Vec<Cidr>,
    pub(crate) max_keys_per_rule: usize,
    pub(crate) max_active_decisions: usize,
}

/// The built-in rule pack (`rules/builtin.toml`), embedded.
pub const BUILTIN_RULES: &str = include_str!("../rules/builtin.toml");

/// Parse a duration: digits and one unit (`s`, `m`, `h`, `d`). Returns
/// microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit_at = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(unit_at);
    let n: i64 = n.parse().ok()?;
    let mult: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)?.checked_mul(1_000_000)
}

impl RuleSet {
    /// The built-in rule pack.
    pub fn builtin() -> RuleSet {
        match RuleSet::parse(BUILTIN_RULES) {
            Ok(r) => r,
            // The pack is tested; an error here is a build defect.
            Err(e) => panic!("built-in rule pack is invalid: {e}"),
        }
    }

    /// Parse and compile a rule file. On error nothing is returned but the
    /// error's position: the caller keeps its current rules.
    pub fn parse(text: &str) -> Result<RuleSet, RuleError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            RuleError::at(text, span, e.message().to_owned())
        })?;
        let mut whitelist = Vec::new();
        for c in &file.whitelist.cidrs {
            let cidr = c
                .get_ref()
                .parse::<Cidr>()
                .map_err(|m| RuleError::at(text, c.span(), m))?;
            whitelist.push(cidr);
        }
        if file.limits.max_keys_per_rule == 0 || file.limits.max_active_decisions == 0 {
            return Err(RuleError::at(text, 0..0, "limits must be at least 1"));
        }
        let mut rules: Vec<Rule> = Vec::new();
        for def in file.rules {
            let rule = compile(text, def)?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(RuleError {
                    message: format!("duplicate rule name {:?}", rule.name),
                    ..RuleError::at(text, 0..0, "")
                });
            }
            rules.push(rule);
        }
        Ok(RuleSet {
            rules,
            whitelist,
            max_keys_per_rule: file.limits.max_keys_per_rule,
            max_active_decisions: file.limits.max_active_decisions,
        })
    }

    /// The compiled rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Replace the whitelist (e.g. with the server config's list).
    pub fn set_whitelist(&mut self, cidrs: &[&str]) -> Result<(), String> {
        self.whitelist = cidrs
            .iter()
            .map(|c| c.parse::<Cidr>())
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// Add CIDRs to the whitelist (e.g. the server config's list, on top of
    /// the rule file's).
    pub fn extend_whitelist(&mut self, cidrs: &[&str]) -> Result<(), String> {
        for c in cidrs {
            self.whitelist.push(c.parse::<Cidr>()?);
        }
        Ok(())
    }

    /// Override the memory bounds.
    pub fn set_limits(&mut self, max_keys_per_rule: usize, max_active_decisions: usize) {
        self.max_keys_per_rule = max_keys_per_rule.max(1);
        self.max_active_decisions = max_active_decisions.max(1);
    }
}

fn field(text: &str, name: &Spanned<String>) -> Result<Field, RuleError> {
    Field::from_name(name.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = Field::ALL.iter().map(|(n, _)| *n).collect();
        RuleError::at(
            text,
            name.span(),
            format!(
                "unknown field {:?} (known: {})",
                name.get_ref(),
                known.join(", ")
            ),
        )
    })
}

fn regexes(
    text: &str,
    map: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<Vec<(Field, Matcher)>, RuleError> {
    let mut out = Vec::new();
    for (k, v) in map {
        let f = field(text, k)?;
        let re = regex::RegexBuilder::new(v.get_ref())
            .size_limit(1 << 20)
            .build()
            .map_err(|e| RuleError::at(text, v.span(), format!("invalid regex: {e}")))?;
        out.push((f, Matcher::new(re)));
    }
    Ok(out)
}

/// A field regex, with a shortcut for the common whole-value literal
/// (`^failure$`, `^ssh\.invalid_user$`): string equality gives the same
/// answer as the regex (`^`/`$` without the `m` flag anchor at the ends of
/// the value) without running an automaton per event.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    re: Regex,
    exact: Option<Box<str>>,
}

impl Matcher {
    fn new(re: Regex) -> Self {
        let exact = anchored_literal(re.as_str()).map(String::into_boxed_str);
        Matcher { re, exact }
    }

    /// Whether the regex matches `s`.
    pub(crate) fn is_match(&self, s: &str) -> bool {
        match &self.exact {
            Some(lit) => **lit == *s,
            None => self.re.is_match(s),
        }
    }

    /// The regex as written.
    pub(crate) fn as_str(&self) -> &str {
        self.re.as_str()
    }
}

/// The literal `L` of a pattern `^L$` made only of ASCII letters, digits,
/// `_` and escaped punctuation; `None` for anything else (flags, classes,
/// repetition, alternation, non-ASCII), which stays a regex.
fn anchored_literal(pattern: &str) -> Option<String> {
    let body = pattern.strip_prefix('^')?.strip_suffix('$')?;
    let mut lit = String::with_capacity(body.len());
    let mut bytes = body.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => lit.push(char::from(b)),
            b'\\' => match bytes.next()? {
                e @ (b'.' | b'+' | b'*' | b'?' | b'(' | b')' | b'|' | b'[' | b']' | b'{' | b'}'
                | b'^' | b'$' | b'#' | b'&' | b'-' | b'~' | b'\\') => lit.push(char::from(e)),
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(lit)
}

fn duration(text: &str, s: &Spanned<String>) -> Result<i64, RuleError> {
    parse_duration(s.get_ref()).ok_or_else(|| {
        RuleError::at(
            text,
            s.span(),
            format!("invalid duration {:?} (e.g. 90s, 2m, 4h, 7d)", s.get_ref()),
        )
    })
}

fn compile(text: &str, def: RuleDef) -> Result<Rule, RuleError> {
    let name = def.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(RuleError::at(text, def.name.span(), "empty rule name"));
    }
    let fields = regexes(text, &def.fields)?;
    let exclude = regexes(text, &def.exclude)?;
    let mut group_by = Vec::new();
    for g in &def.group_by {
        group_by.push(field(text, g)?);
    }
    let count = *def.threshold.count.get_ref();
    if count == 0 || count > 100_000 {
        return Err(RuleError::at(
            text,
            def.threshold.count.span(),
            "threshold count must be 1..=100000",
        ));
    }
    let window_micros = match &def.threshold.window {
        Some(w) => duration(text, w)?,
        None => 0,
    };
    let distinct = match &def.threshold.distinct {
        Some(d) => Some(field(text, d)?),
        None => None,
    };
    let action = match &def.action {
        Some(a) => {
            let ttl = duration(text, &a.ttl)?;
            if ttl == 0 {
                return Err(RuleError::at(text, a.ttl.span(), "ttl must be positive"));
            }
            Some((a.decision, ttl))
        }
        None => None,
    };
    let origin = match def.origin {
        OriginDef::Sensor => Some(Origin::Sensor),
        OriginDef::Log => Some(Origin::Log),
        OriginDef::Any => None,
    };
    let signature = format!(
        "{:?}|{:?}|{origin:?}|{:?}|{:?}|{group_by:?}|{count}|{window_micros}|{distinct:?}|{action:?}|{:?}",
        def.service,
        def.kind,
        fields
            .iter()
            .map(|(f, r)| (f, r.as_str()))
            .collect::<Vec<_>>(),
        exclude
            .iter()
            .map(|(f, r)| (f, r.as_str()))
            .collect::<Vec<_>>(),
        def.severity,
    );
    Ok(Rule {
        name,
        description: def.description,
        severity: def.severity,
        services: def.service,
        kinds: def.kind,
        origin,
        fields,
        exclude,
        group_by,
        count,
        window_micros,
        distinct,
        action,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2m"), Some(120_000_000));
        assert_eq!(parse_duration("121s"), Some(121_000_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn errors_have_positions() {
        let e =
            RuleSet::parse("[[rule]]\nname = \"a\"\nfields = { username = \"(\" }\n").unwrap_err();
        assert_eq!((e.line, e.column), (3, 23), "{e}");
        assert!(e.message.contains("regex"));
        let e = RuleSet::parse("[[rule]]\nname = \"a\"\ngroup_by = [\"src_ip\", \"nope\"]\n")
            .unwrap_err();
        assert_eq!((e.line, e.column), (3, 23), "{e}");
        let e = RuleSet::parse("[[rule]]\nname = \"a\"\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = RuleSet::parse(
            "[[rule]]\nname = \"a\"\nthreshold = { count = 5, window = \"2 minutes\" }\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (3, 35), "{e}");
        let e = RuleSet::parse("[whitelist]\ncidrs = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 10), "{e}");
        let e = RuleSet::parse("[[rule]]\nname = \"a\"\n[[rule]]\nname = \"a\"\n").unwrap_err();
        assert!(e.message.contains("duplicate"));
    }

    #[test]
    fn literal_shortcut_agrees_with_regex() {
        for (pat, lit) in [
            ("^failure$", Some("failure")),
            ("^ssh\\.invalid_user$", Some("ssh.invalid_user")),
            ("^$", Some("")),
            ("^a.c$", None),
            ("^(?i)pam$", None),
            ("^pam", None),
            ("pam$", None),
            ("^pam\\$", None),
            ("^p\\dm$", None),
            ("^pa m$", None),
        ] {
            assert_eq!(anchored_literal(pat).as_deref(), lit, "{pat}");
            let m = Matcher::new(Regex::new(pat).unwrap());
            for v in [
                "",
                "failure",
                "failure\n",
                "Failure",
                "ssh.invalid_user",
                "sshxinvalid_user",
                "pam",
                "abc",
                "pa m",
                "p5m",
            ] {
                assert_eq!(m.is_match(v), m.re.is_match(v), "{pat} on {v:?}");
            }
        }
    }

    #[test]
    fn builtin_pack_loads() {
        let r = RuleSet::builtin();
        assert!(r.rules().len() >= 10);
        assert!(r.rules().iter().any(|r| r.name == "ssh-bruteforce-account"));
    }
}
