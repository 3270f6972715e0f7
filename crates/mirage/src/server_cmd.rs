//! `mirage server`: run the detection server, or (subcommands) read and
//! change what it stored: decisions, events, agents, alerts.
//!
//! The subcommands open the same SQLite file the running server writes
//! (WAL mode allows it); a decision added or deleted here reaches the
//! running server's rule engine through the store's change log within a
//! second. They never create that file: without one where they look (the
//! default `./mirage-data`, `--config`'s data directory or `--data-dir`)
//! they stop with exit 2, and otherwise say on stderr which one they use.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};
use mirage_config::ServerConfig;
use mirage_core::policy::{AgentSettings, ServiceMap};
use mirage_store::{DecisionChange, DecisionRow, EventQuery, SqliteStore, Store};

use crate::EXIT_USAGE;
use crate::cli::{
    AgentsOp, DecisionsOp, EventsArgs, OutputFormat, ServerArgs, ServerCommand, StoreArgs, TokensOp,
};

pub fn run(args: ServerArgs) -> ExitCode {
    if args.print_config {
        print!("{}", mirage_config::SERVER_EXAMPLE_TOML);
        return ExitCode::SUCCESS;
    }
    let Some(rt) = crate::runtime() else {
        return ExitCode::FAILURE;
    };
    match args.command {
        None => rt.block_on(serve(args.config, args.data_dir, args.syslog, args.listen)),
        Some(cmd) => rt.block_on(operate(cmd)),
    }
}

fn load_config(path: Option<&PathBuf>) -> Result<ServerConfig, ExitCode> {
    match path {
        Some(p) => ServerConfig::load(p).map_err(|e| {
            eprintln!("mirage: {e}");
            ExitCode::from(EXIT_USAGE)
        }),
        None => Ok(ServerConfig::default()),
    }
}

async fn serve(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    syslog: Vec<std::net::SocketAddr>,
    listen: Option<std::net::SocketAddr>,
) -> ExitCode {
    let mut config = match load_config(config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(dir) = data_dir {
        config.server.data_dir = dir;
    }
    if !syslog.is_empty() {
        // An address given on the command line is meant exactly.
        config.syslog.listen = syslog;
        config.syslog.fallback_port = 0;
    }
    if let Some(addr) = listen {
        config.api.listen = addr.to_string();
    }
    let server = match mirage_server::start(&config).await {
        Ok(s) => s,
        Err(mirage_server::ServerError::Config(e)) => {
            eprintln!("mirage: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!("mirage: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "server running; data in {}",
        config.server.data_dir.display()
    );
    crate::sensor_cmd::wait_for_signal().await;
    tracing::info!("shutting down: storing what was received");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// The data directory the store arguments name: `--data-dir`, else
/// `server.data_dir` of `--config`, else the default `./mirage-data`.
fn data_dir_of(args: &StoreArgs) -> Result<PathBuf, ExitCode> {
    Ok(match (&args.data_dir, &args.config) {
        (Some(d), _) => d.clone(),
        (None, Some(_)) => load_config(args.config.as_ref())?.server.data_dir,
        (None, None) => ServerConfig::default().server.data_dir,
    })
}

/// The server's database in `dir`, refused (exit 2) when it is not there:
/// only `mirage server` makes one. An operator command that made its own
/// (a typo'd or forgotten `--data-dir`) would store tokens and decisions
/// the running server never sees. Which file was used is said on stderr
/// when the command succeeds ([`USED_DB`]), so stdout stays the command's
/// output for scripts.
fn server_db(dir: &std::path::Path) -> Result<(), ExitCode> {
    let db = dir.join("mirage.db");
    // Absolute, so the line says where a relative default really points.
    let shown = std::path::absolute(&db).unwrap_or_else(|_| db.clone());
    if !db.is_file() {
        eprintln!(
            "mirage: no server database at {} (pass --data-dir DIR or --config FILE of the running server; `mirage server` creates it at first start)",
            shown.display()
        );
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let _ = USED_DB.set(shown);
    Ok(())
}

/// The database an operator command used, said once it has succeeded: on
/// a refusal the error stays the only line.
static USED_DB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

async fn open_store(args: &StoreArgs) -> Result<SqliteStore, ExitCode> {
    let dir = data_dir_of(args)?;
    server_db(&dir)?;
    SqliteStore::open_dir(&dir).await.map_err(|e| {
        eprintln!("mirage: {e}");
        ExitCode::FAILURE
    })
}

async fn operate(cmd: ServerCommand) -> ExitCode {
    let result = match cmd {
        ServerCommand::Decisions { op } => decisions(op).await,
        ServerCommand::Events(args) => events(args).await,
        ServerCommand::Agents { op: None, store } => agents(store).await,
        ServerCommand::Agents {
            op: Some(AgentsOp::Revoke { agent_id, store }),
            ..
        } => revoke_agent(&agent_id, store).await,
        ServerCommand::Agents {
            op:
                Some(AgentsOp::Set {
                    agent_id,
                    mode,
                    redirect,
                    clear_redirects,
                    whitelist,
                    clear_whitelist,
                    store,
                }),
            ..
        } => {
            let change = SettingsChange {
                mode,
                redirect,
                clear_redirects,
                whitelist,
                clear_whitelist,
            };
            set_agent(&agent_id, change, store).await
        }
        ServerCommand::Alerts(args) => alerts(args).await,
        ServerCommand::Tokens { op } => tokens(op).await,
        ServerCommand::Pin(store) => pin(store),
    };
    match result {
        Ok(code) => {
            if let Some(db) = USED_DB.get() {
                eprintln!("mirage: using {}", db.display());
            }
            code
        }
        Err(code) => code,
    }
}

fn failed(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("mirage: {e}");
    ExitCode::FAILURE
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn time_text(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// Attacker-chosen text (user names in keys and reasons) printed to a
/// terminal: control characters escaped, so it cannot move the cursor or
/// fake lines.
fn safe(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn decision_json(
    d: &DecisionRow,
    history: Option<&[DecisionChange]>,
    now: i64,
) -> serde_json::Value {
    let mut v = serde_json::json!({
        "ip": d.ip,
        "decision": d.decision,
        "rule": d.rule,
        "severity": d.severity,
        "reason": d.reason,
        "key": d.key,
        "created": time_text(d.created_micros),
        "renewed": time_text(d.renewed_micros),
        "expires": time_text(d.expires_micros),
        "ttl_secs": ((d.expires_micros - now).max(0) / 1_000_000),
        "evidence": d.evidence,
        "origin": d.origin,
    });
    if let Some(h) = history {
        v["history"] = h
            .iter()
            .zip(change_labels(h))
            .map(|(c, what)| {
                serde_json::json!({
                    "at": time_text(c.at_micros),
                    "change": what,
                    "rule": c.decision.rule,
                    "severity": c.decision.severity,
                    "reason": c.decision.reason,
                    "ttl_secs": ((c.decision.expires_micros - c.at_micros).max(0) / 1_000_000),
                    "expires": time_text(c.decision.expires_micros),
                    "origin": c.decision.origin,
                })
            })
            .collect();
    }
    v
}

/// What each change of one decision's history did: `made` (the first
/// `add`, or one after the decision was deleted or had run out),
/// `renewed` (an `add` while it was in force) or `deleted`.
fn change_labels(history: &[DecisionChange]) -> Vec<&'static str> {
    let mut in_force_until = None;
    history
        .iter()
        .map(|c| {
            if c.op == "delete" {
                in_force_until = None;
                return "deleted";
            }
            let renewal = in_force_until.is_some_and(|end| c.at_micros < end);
            in_force_until = Some(c.decision.expires_micros);
            if renewal { "renewed" } else { "made" }
        })
        .collect()
}

/// Decisions, each with its history when `histories` has one for it
/// (`list`; in the text table the history follows its decision, indented,
/// when there is more than its making to tell).
fn print_decisions(rows: &[DecisionRow], histories: &[Vec<DecisionChange>], format: OutputFormat) {
    let now = now_micros();
    let history = |i: usize| histories.get(i).map(Vec::as_slice);
    match format {
        OutputFormat::Json => print_json(&serde_json::Value::Array(
            rows.iter()
                .enumerate()
                .map(|(i, d)| decision_json(d, history(i), now))
                .collect(),
        )),
        OutputFormat::Text => {
            println!(
                "{:<39} {:<8} {:>8}  {:<26} {:<8} {:<7} REASON",
                "IP", "DECISION", "TTL", "RULE", "SEVERITY", "ORIGIN"
            );
            for (i, d) in rows.iter().enumerate() {
                let ttl = (d.expires_micros - now).max(0) / 1_000_000;
                println!(
                    "{:<39} {:<8} {:>7}s  {:<26} {:<8} {:<7} {}",
                    d.ip,
                    d.decision,
                    ttl,
                    d.rule,
                    d.severity,
                    d.origin,
                    safe(&d.reason)
                );
                let Some(h) = history(i).filter(|h| h.len() > 1) else {
                    continue;
                };
                for (c, what) in h.iter().zip(change_labels(h)) {
                    println!(
                        "  {:<20} {:<8} {:>7}s  {:<26} {:<8} {:<7} {}",
                        time_text(c.at_micros),
                        what,
                        (c.decision.expires_micros - c.at_micros).max(0) / 1_000_000,
                        c.decision.rule,
                        c.decision.severity,
                        c.decision.origin,
                        safe(&c.decision.reason)
                    );
                }
            }
        }
    }
}

async fn decisions(op: DecisionsOp) -> Result<ExitCode, ExitCode> {
    match op {
        DecisionsOp::List { store, all } => {
            let s = open_store(&store).await?;
            let mut rows = s
                .list_decisions((!all).then(now_micros))
                .await
                .map_err(failed)?;
            rows.truncate(store.limit as usize);
            let mut histories = Vec::with_capacity(rows.len());
            for d in &rows {
                histories.push(
                    s.decision_history(&d.ip, &d.decision)
                        .await
                        .map_err(failed)?,
                );
            }
            print_decisions(&rows, &histories, store.format);
        }
        DecisionsOp::Add {
            ip,
            decision,
            ttl,
            reason,
            store,
        } => {
            let Some(ttl_micros) = mirage_rules::parse_duration(&ttl).filter(|t| *t > 0) else {
                eprintln!("mirage: --ttl: '{ttl}' is not a duration like 30m, 4h or 7d");
                return Err(ExitCode::from(EXIT_USAGE));
            };
            let s = open_store(&store).await?;
            let now = now_micros();
            let row = DecisionRow {
                ip: ip.to_canonical().to_string(),
                decision,
                rule: "manual".into(),
                severity: "high".into(),
                reason,
                key: String::new(),
                created_micros: now,
                expires_micros: now.saturating_add(ttl_micros),
                evidence: 0,
                origin: "cli".into(),
                renewed_micros: now,
            };
            s.put_decisions(std::slice::from_ref(&row))
                .await
                .map_err(failed)?;
            print_decisions(&[row], &[], store.format);
        }
        DecisionsOp::Delete {
            ip,
            decision,
            store,
        } => {
            let s = open_store(&store).await?;
            let removed = s
                .delete_decisions(
                    &ip.to_canonical().to_string(),
                    decision.as_deref(),
                    "cli",
                    now_micros(),
                )
                .await
                .map_err(failed)?;
            if removed.is_empty() {
                eprintln!("mirage: no decision about {ip}");
                return Err(ExitCode::FAILURE);
            }
            print_decisions(&removed, &[], store.format);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn events(args: EventsArgs) -> Result<ExitCode, ExitCode> {
    let s = open_store(&args.store).await?;
    let rows = s
        .query_events(&EventQuery {
            src_ip: args.ip.map(|ip| ip.to_canonical().to_string()),
            kind: args.kind,
            service: args.service,
            since_micros: None,
            limit: args.store.limit,
        })
        .await
        .map_err(failed)?;
    match args.store.format {
        // The stored event as the sensor wrote it: `mirage report` reads it.
        OutputFormat::Json => {
            for r in &rows {
                println!("{}", r.json);
            }
        }
        OutputFormat::Text => {
            println!(
                "{:<20} {:<8} {:<14} {:<39} {:<20} DETAIL",
                "TIME", "SERVICE", "KIND", "SOURCE", "HOST"
            );
            for r in &rows {
                println!(
                    "{:<20} {:<8} {:<14} {:<39} {:<20} {}",
                    time_text(r.ts_micros),
                    r.service,
                    r.kind,
                    r.src_ip,
                    safe(&r.host),
                    safe(&event_detail(&r.json))
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of what an event says, for the text table.
fn event_detail(json: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return String::new();
    };
    let get = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
    match get("kind") {
        "auth.attempt" => format!(
            "{} {} user={}",
            get("method"),
            get("result"),
            get("username")
        ),
        "command" => get("raw").chars().take(120).collect(),
        "attack" => get("technique").to_owned(),
        _ => String::new(),
    }
}

async fn agents(args: StoreArgs) -> Result<ExitCode, ExitCode> {
    let s = open_store(&args).await?;
    let rows = s.list_agents().await.map_err(failed)?;
    match args.format {
        OutputFormat::Json => print_json(&serde_json::Value::Array(
            rows.iter()
                .map(|a| {
                    serde_json::json!({
                        "agent_id": a.agent_id,
                        "hostname": a.hostname,
                        "version": a.version,
                        "sent": time_text(a.sent_micros),
                        "seen": time_text(a.seen_micros),
                        "peer": a.peer,
                        "status": serde_json::from_str::<serde_json::Value>(&a.status_json)
                            .unwrap_or(serde_json::Value::Null),
                    })
                })
                .collect(),
        )),
        OutputFormat::Text => {
            println!(
                "{:<38} {:<20} {:<8} {:<20} PEER",
                "AGENT", "HOST", "VERSION", "LAST SEEN"
            );
            for a in &rows {
                println!(
                    "{:<38} {:<20} {:<8} {:<20} {}",
                    safe(&a.agent_id),
                    safe(&a.hostname),
                    safe(&a.version),
                    time_text(a.seen_micros),
                    a.peer
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `mirage server agents set` changes.
struct SettingsChange {
    mode: Option<String>,
    redirect: Vec<String>,
    clear_redirects: bool,
    whitelist: Vec<String>,
    clear_whitelist: bool,
}

impl SettingsChange {
    /// Apply to `s`; every value is checked the way the agent will read it,
    /// so an agent is never sent settings it cannot enforce.
    fn apply(self, s: &mut AgentSettings) -> Result<(), String> {
        if let Some(m) = self.mode {
            s.mode = serde_json::from_value(serde_json::Value::String(m.clone()))
                .map_err(|_| format!("--mode {m}: unknown mode"))?;
        }
        if self.clear_redirects || !self.redirect.is_empty() {
            s.services.clear();
        }
        for r in &self.redirect {
            let (port, target) = r
                .split_once('=')
                .ok_or_else(|| format!("--redirect '{r}': not PORT=HOST:PORT"))?;
            let port: u16 = port
                .trim()
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("--redirect '{r}': bad port"))?;
            let honeypot: std::net::SocketAddr = target
                .trim()
                .parse()
                .map_err(|_| format!("--redirect '{r}': the honeypot must be IP:PORT"))?;
            s.services.push(ServiceMap {
                proto: "tcp".into(),
                port,
                service: mirage_agent::enforcement::service_name(port),
                honeypot: honeypot.to_string(),
            });
        }
        if self.clear_whitelist || !self.whitelist.is_empty() {
            s.whitelist.sources.clear();
        }
        for w in &self.whitelist {
            let cidr: mirage_agent::firewall::Cidr =
                w.parse().map_err(|e| format!("--whitelist '{w}': {e}"))?;
            s.whitelist.sources.push(cidr.to_string());
        }
        Ok(())
    }
}

async fn set_agent(
    agent_id: &str,
    change: SettingsChange,
    args: StoreArgs,
) -> Result<ExitCode, ExitCode> {
    let s = open_store(&args).await?;
    let Some(row) = s.agent_key(agent_id).await.map_err(failed)? else {
        eprintln!("mirage: no enrolled agent '{}'", agent_id.escape_debug());
        return Err(ExitCode::from(EXIT_USAGE));
    };
    let mut settings: AgentSettings = serde_json::from_str(&row.settings_json).unwrap_or_default();
    if let Err(e) = change.apply(&mut settings) {
        eprintln!("mirage: {e}");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    let json = serde_json::to_string(&settings).map_err(failed)?;
    s.set_agent_settings(agent_id, &json)
        .await
        .map_err(failed)?;
    print_json(&serde_json::to_value(&settings).unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

async fn alerts(args: StoreArgs) -> Result<ExitCode, ExitCode> {
    let s = open_store(&args).await?;
    let rows = s.list_alerts(args.limit).await.map_err(failed)?;
    match args.format {
        OutputFormat::Json => print_json(&serde_json::to_value(&rows).unwrap_or_default()),
        OutputFormat::Text => {
            println!(
                "{:<20} {:<26} {:<8} {:<39} REASON",
                "TIME", "RULE", "SEVERITY", "SOURCE"
            );
            for a in &rows {
                println!(
                    "{:<20} {:<26} {:<8} {:<39} {}",
                    time_text(a.ts_micros),
                    a.rule,
                    a.severity,
                    a.src_ip.as_deref().unwrap_or("-"),
                    safe(&a.reason)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tokens(op: TokensOp) -> Result<ExitCode, ExitCode> {
    match op {
        TokensOp::Create {
            ttl,
            replace,
            store,
        } => {
            let Some(ttl_micros) = mirage_rules::parse_duration(&ttl).filter(|t| *t > 0) else {
                eprintln!("mirage: --ttl: '{ttl}' is not a duration like 30m, 24h or 7d");
                return Err(ExitCode::from(EXIT_USAGE));
            };
            if let Some(id) = &replace
                && !mirage_config::agent::valid_agent_id(id)
            {
                eprintln!(
                    "mirage: --replace: '{}' is not an agent id",
                    id.escape_debug()
                );
                return Err(ExitCode::from(EXIT_USAGE));
            }
            let s = open_store(&store).await?;
            if let Some(id) = &replace
                && s.agent_key(id).await.map_err(failed)?.is_none()
            {
                eprintln!("mirage: --replace: no agent '{id}' is enrolled");
                return Err(ExitCode::FAILURE);
            }
            let (dir, tls) = server_dir(&store)?;
            let pin = if tls {
                Some(mirage_server::identity::api_pin(&dir).map_err(failed)?)
            } else {
                None
            };
            let token = mirage_server::identity::new_token(pin).map_err(failed)?;
            let now = now_micros();
            s.create_token(
                &mirage_server::policy::token_hash(&token),
                now,
                now.saturating_add(ttl_micros),
                replace.as_deref(),
            )
            .await
            .map_err(failed)?;
            // The token itself is shown once and stored only as a hash.
            match store.format {
                OutputFormat::Json => print_json(&serde_json::json!({
                    "token": token,
                    "id": &mirage_server::policy::token_hash(&token)[..mirage_store::TOKEN_ID_LEN],
                    "expires": time_text(now.saturating_add(ttl_micros)),
                    "replace": replace,
                })),
                OutputFormat::Text => println!("{token}"),
            }
        }
        TokensOp::List(store) => {
            let s = open_store(&store).await?;
            let rows = s.list_tokens().await.map_err(failed)?;
            match store.format {
                OutputFormat::Json => print_json(&serde_json::to_value(&rows).unwrap_or_default()),
                OutputFormat::Text => {
                    println!(
                        "{:<14} {:<20} {:<20} {:<24} REPLACES",
                        "ID", "CREATED", "EXPIRES", "USED BY"
                    );
                    for t in &rows {
                        println!(
                            "{:<14} {:<20} {:<20} {:<24} {}",
                            t.id,
                            time_text(t.created_micros),
                            time_text(t.expires_micros),
                            t.used_by.as_deref().unwrap_or("-"),
                            t.replace_agent.as_deref().unwrap_or("-"),
                        );
                    }
                }
            }
        }
        TokensOp::Revoke { id, store } => {
            let s = open_store(&store).await?;
            match s.revoke_token(&id).await.map_err(failed)? {
                0 => {
                    eprintln!(
                        "mirage: no unused token with id '{}' (see `mirage server tokens list`)",
                        id.escape_debug()
                    );
                    return Err(ExitCode::FAILURE);
                }
                n => println!("revoked {n} token(s)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The data directory the store arguments name, and whether the server's
/// policy API speaks TLS there (its config says; the default does).
fn server_dir(args: &StoreArgs) -> Result<(PathBuf, bool), ExitCode> {
    let dir = data_dir_of(args)?;
    let tls = match &args.config {
        Some(_) => load_config(args.config.as_ref())?.api.tls,
        None => true,
    };
    Ok((dir, tls))
}

fn pin(store: StoreArgs) -> Result<ExitCode, ExitCode> {
    let (dir, _) = server_dir(&store)?;
    // The certificate is the server's. Named explicitly, the directory may
    // be one whose server has not started yet (pinning sensors before the
    // server's first start is the documented way, docs/server.md); only
    // the implicit default must already be a server's, or a pin made up
    // in ./mirage-data would match no server.
    if store.data_dir.is_none() && store.config.is_none() {
        server_db(&dir)?;
    }
    let pin = mirage_server::identity::api_pin(&dir).map_err(failed)?;
    match store.format {
        OutputFormat::Json => print_json(&serde_json::json!({ "pin": pin.hex() })),
        OutputFormat::Text => println!("{}", pin.hex()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke_agent(agent_id: &str, store: StoreArgs) -> Result<ExitCode, ExitCode> {
    let s = open_store(&store).await?;
    if s.revoke_agent(agent_id, now_micros())
        .await
        .map_err(failed)?
    {
        println!("agent {agent_id} revoked");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "mirage: no enrolled, unrevoked agent '{}' (see `mirage server agents`)",
            agent_id.escape_debug()
        );
        Err(ExitCode::FAILURE)
    }
}
