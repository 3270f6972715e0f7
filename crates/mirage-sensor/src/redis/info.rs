//! INFO: every section, laid out field for field like Redis 7.0.15's
//! `genRedisInfoString`, with figures that follow the honeypot's real state
//! (uptime, connected clients, keys, memory that grows with the keyspace,
//! commands processed, replication role after SLAVEOF).
//!
//! Older versions get the same layout without the fields 7.0 added
//! (listed in `SEVEN_ONLY`), which is close to but not exactly their INFO.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Figures INFO reports, gathered by the caller.
#[derive(Debug, Clone, Default)]
pub struct InfoState {
    /// Version text.
    pub version: String,
    /// Whether to lay out 7.x fields.
    pub seven: bool,
    /// `os:` line.
    pub os: String,
    /// Fake process id.
    pub pid: u32,
    /// 40 hex digits.
    pub run_id: String,
    /// Port the client connected to.
    pub port: u16,
    /// Seconds since start.
    pub uptime: u64,
    /// Unix microseconds now.
    pub now_usec: u64,
    /// `executable:`.
    pub executable: String,
    /// `config_file:`.
    pub config_file: String,
    /// Connected clients (in this scope).
    pub clients: usize,
    /// Bytes of keys and values held in this scope.
    pub data_bytes: u64,
    /// Keys in this scope.
    pub keys: usize,
    /// Unix seconds of the last save.
    pub last_save: u64,
    /// Changes since the last save.
    pub dirty: u64,
    /// Saves done.
    pub saves: u64,
    /// Connections accepted since start.
    pub connections: u64,
    /// Commands processed since start.
    pub commands: u64,
    /// Keys freed by background flushes.
    pub lazyfreed: u64,
    /// Bytes received / sent since start.
    pub net_in: u64,
    /// Bytes sent since start.
    pub net_out: u64,
    /// Keys expired.
    pub expired: u64,
    /// Keyspace hits.
    pub hits: u64,
    /// Keyspace misses.
    pub misses: u64,
    /// Error replies by their first word (`ERR`, `WRONGPASS`).
    pub errors: BTreeMap<String, u64>,
    /// Master after SLAVEOF.
    pub master: Option<(String, u16)>,
    /// Replication id.
    pub replid: String,
    /// Per database (keys, expires).
    pub dbs: Vec<(usize, usize)>,
    /// Calls per command (`get`, `config|get`).
    pub cmdstats: BTreeMap<String, u64>,
}

/// Fields a pre-7.0 INFO does not have.
const SEVEN_ONLY: &[&str] = &[
    "monotonic_clock",
    "process_supervised",
    "server_time_usec",
    "io_threads_active",
    "cluster_connections",
    "tracking_clients",
    "clients_in_timeout_table",
    "used_memory_vm_eval",
    "used_memory_scripts_eval",
    "number_of_cached_scripts",
    "number_of_functions",
    "number_of_libraries",
    "used_memory_vm_functions",
    "used_memory_vm_total",
    "used_memory_vm_total_human",
    "used_memory_functions",
    "used_memory_scripts",
    "used_memory_scripts_human",
    "mem_total_replication_buffers",
    "mem_cluster_links",
    "lazyfreed_objects",
    "async_loading",
    "current_cow_peak",
    "current_cow_size",
    "current_cow_size_age",
    "current_fork_perc",
    "current_save_keys_processed",
    "current_save_keys_total",
    "rdb_last_load_keys_expired",
    "rdb_last_load_keys_loaded",
    "aof_rewrites",
    "aof_rewrites_consecutive_failures",
    "total_net_repl_input_bytes",
    "total_net_repl_output_bytes",
    "evicted_clients",
    "total_eviction_exceeded_time",
    "current_eviction_exceeded_time",
    "pubsubshard_channels",
    "total_forks",
    "unexpected_error_replies",
    "total_error_replies",
    "dump_payload_sanitizations",
    "total_reads_processed",
    "total_writes_processed",
    "io_threaded_reads_processed",
    "io_threaded_writes_processed",
    "reply_buffer_shrinks",
    "reply_buffer_expands",
    "master_failover_state",
    "used_cpu_sys_main_thread",
    "used_cpu_user_main_thread",
];

/// Sections in the order Redis prints them, and whether each is in the
/// default set.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("commandstats", false),
    ("errorstats", true),
    ("latencystats", false),
    ("cluster", true),
    ("keyspace", true),
];

/// Redis's `bytesToHuman`.
fn human(n: u64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{}B", n as u64)
    } else if n < 1024.0 * 1024.0 {
        format!("{:.2}K", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", n / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", n / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Which sections `INFO args...` asks for, in print order.
pub fn pick_sections(args: &[Vec<u8>]) -> Vec<&'static str> {
    let asked: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = asked.iter().any(|a| a == "all" || a == "everything");
    let default = asked.is_empty() || asked.iter().any(|a| a == "default");
    SECTIONS
        .iter()
        .filter(|(name, dflt)| {
            (all && (*name != "modules" || asked.iter().any(|a| a == "everything")))
                || (default && *dflt)
                || asked.iter().any(|a| a == name)
        })
        .map(|(n, _)| *n)
        .collect()
}

/// The INFO text for `sections`.
pub fn render(s: &InfoState, sections: &[&str]) -> String {
    let mut out = String::new();
    let used_memory = 990_000 + s.data_bytes * 2 + s.keys as u64 * 72 + s.clients as u64 * 20_000;
    let mut first = true;
    for &section in sections {
        if !first {
            out.push_str("\r\n");
        }
        first = false;
        let mut f: Vec<(&str, String)> = Vec::new();
        let title = match section {
            "server" => {
                f.extend([
                    ("redis_version", s.version.clone()),
                    ("redis_git_sha1", "00000000".into()),
                    ("redis_git_dirty", "0".into()),
                    ("redis_build_id", "ae4d7c971a948f0".into()),
                    ("redis_mode", "standalone".into()),
                    ("os", s.os.clone()),
                    ("arch_bits", "64".into()),
                    ("monotonic_clock", "POSIX clock_gettime".into()),
                    ("multiplexing_api", "epoll".into()),
                    ("atomicvar_api", "c11-builtin".into()),
                    ("gcc_version", "12.2.0".into()),
                    ("process_id", s.pid.to_string()),
                    ("process_supervised", "no".into()),
                    ("run_id", s.run_id.clone()),
                    ("tcp_port", s.port.to_string()),
                    ("server_time_usec", s.now_usec.to_string()),
                    ("uptime_in_seconds", s.uptime.to_string()),
                    ("uptime_in_days", (s.uptime / 86400).to_string()),
                    ("hz", "10".into()),
                    ("configured_hz", "10".into()),
                    (
                        "lru_clock",
                        ((s.now_usec / 1_000_000) & 0xff_ffff).to_string(),
                    ),
                    ("executable", s.executable.clone()),
                    ("config_file", s.config_file.clone()),
                    ("io_threads_active", "0".into()),
                ]);
                "Server"
            }
            "clients" => {
                f.extend([
                    ("connected_clients", s.clients.to_string()),
                    ("cluster_connections", "0".into()),
                    ("maxclients", "10000".into()),
                    ("client_recent_max_input_buffer", "20480".into()),
                    ("client_recent_max_output_buffer", "0".into()),
                    ("blocked_clients", "0".into()),
                    ("tracking_clients", "0".into()),
                    ("clients_in_timeout_table", "0".into()),
                ]);
                "Clients"
            }
            "memory" => {
                let rss = 12_771_328 + used_memory * 2;
                let peak = used_memory + 137_560;
                let dataset = used_memory.saturating_sub(876_256);
                f.extend([
                    ("used_memory", used_memory.to_string()),
                    ("used_memory_human", human(used_memory)),
                    ("used_memory_rss", rss.to_string()),
                    ("used_memory_rss_human", human(rss)),
                    ("used_memory_peak", peak.to_string()),
                    ("used_memory_peak_human", human(peak)),
                    (
                        "used_memory_peak_perc",
                        format!("{:.2}%", used_memory as f64 * 100.0 / peak as f64),
                    ),
                    ("used_memory_overhead", "876256".into()),
                    ("used_memory_startup", "876056".into()),
                    ("used_memory_dataset", dataset.to_string()),
                    (
                        "used_memory_dataset_perc",
                        format!(
                            "{:.2}%",
                            dataset as f64 * 100.0
                                / used_memory.saturating_sub(876_056).max(1) as f64
                        ),
                    ),
                    ("allocator_allocated", (used_memory + 734_872).to_string()),
                    ("allocator_active", (used_memory + 1_074_056).to_string()),
                    ("allocator_resident", (used_memory + 3_867_528).to_string()),
                    ("total_system_memory", "8340893696".into()),
                    ("total_system_memory_human", "7.77G".into()),
                    ("used_memory_lua", "32768".into()),
                    ("used_memory_vm_eval", "32768".into()),
                    ("used_memory_lua_human", "32.00K".into()),
                    ("used_memory_scripts_eval", "0".into()),
                    ("number_of_cached_scripts", "0".into()),
                    ("number_of_functions", "0".into()),
                    ("number_of_libraries", "0".into()),
                    ("used_memory_vm_functions", "33792".into()),
                    ("used_memory_vm_total", "66560".into()),
                    ("used_memory_vm_total_human", "65.00K".into()),
                    ("used_memory_functions", "200".into()),
                    ("used_memory_scripts", "200".into()),
                    ("used_memory_scripts_human", "200B".into()),
                    ("maxmemory", "0".into()),
                    ("maxmemory_human", "0B".into()),
                    ("maxmemory_policy", "noeviction".into()),
                    ("allocator_frag_ratio", "1.20".into()),
                    ("allocator_frag_bytes", "339184".into()),
                    ("allocator_rss_ratio", "2.35".into()),
                    ("allocator_rss_bytes", "2793472".into()),
                    ("rss_overhead_ratio", "2.63".into()),
                    ("rss_overhead_bytes", "7913472".into()),
                    (
                        "mem_fragmentation_ratio",
                        format!("{:.2}", rss as f64 / used_memory as f64),
                    ),
                    (
                        "mem_fragmentation_bytes",
                        rss.saturating_sub(used_memory).to_string(),
                    ),
                    ("mem_not_counted_for_evict", "0".into()),
                    ("mem_replication_backlog", "0".into()),
                    ("mem_total_replication_buffers", "0".into()),
                    ("mem_clients_slaves", "0".into()),
                    (
                        "mem_clients_normal",
                        (s.clients as u64 * 22_400).to_string(),
                    ),
                    ("mem_cluster_links", "0".into()),
                    ("mem_aof_buffer", "0".into()),
                    ("mem_allocator", "jemalloc-5.3.0".into()),
                    ("active_defrag_running", "0".into()),
                    ("lazyfree_pending_objects", "0".into()),
                    ("lazyfreed_objects", s.lazyfreed.to_string()),
                ]);
                "Memory"
            }
            "persistence" => {
                f.extend([
                    ("loading", "0".into()),
                    ("async_loading", "0".into()),
                    ("current_cow_peak", "0".into()),
                    ("current_cow_size", "0".into()),
                    ("current_cow_size_age", "0".into()),
                    ("current_fork_perc", "0.00".into()),
                    ("current_save_keys_processed", "0".into()),
                    ("current_save_keys_total", "0".into()),
                    ("rdb_changes_since_last_save", s.dirty.to_string()),
                    ("rdb_bgsave_in_progress", "0".into()),
                    ("rdb_last_save_time", s.last_save.to_string()),
                    ("rdb_last_bgsave_status", "ok".into()),
                    (
                        "rdb_last_bgsave_time_sec",
                        if s.saves > 0 { "0" } else { "-1" }.into(),
                    ),
                    ("rdb_current_bgsave_time_sec", "-1".into()),
                    ("rdb_saves", s.saves.to_string()),
                    ("rdb_last_cow_size", "0".into()),
                    ("rdb_last_load_keys_expired", "0".into()),
                    ("rdb_last_load_keys_loaded", "0".into()),
                    ("aof_enabled", "0".into()),
                    ("aof_rewrite_in_progress", "0".into()),
                    ("aof_rewrite_scheduled", "0".into()),
                    ("aof_last_rewrite_time_sec", "-1".into()),
                    ("aof_current_rewrite_time_sec", "-1".into()),
                    ("aof_last_bgrewrite_status", "ok".into()),
                    ("aof_rewrites", "0".into()),
                    ("aof_rewrites_consecutive_failures", "0".into()),
                    ("aof_last_write_status", "ok".into()),
                    ("aof_last_cow_size", "0".into()),
                    ("module_fork_in_progress", "0".into()),
                    ("module_fork_last_cow_size", "0".into()),
                ]);
                "Persistence"
            }
            "stats" => {
                let errors: u64 = s.errors.values().sum();
                f.extend([
                    ("total_connections_received", s.connections.to_string()),
                    ("total_commands_processed", s.commands.to_string()),
                    ("instantaneous_ops_per_sec", "0".into()),
                    ("total_net_input_bytes", s.net_in.to_string()),
                    ("total_net_output_bytes", s.net_out.to_string()),
                    ("total_net_repl_input_bytes", "0".into()),
                    ("total_net_repl_output_bytes", "0".into()),
                    ("instantaneous_input_kbps", "0.00".into()),
                    ("instantaneous_output_kbps", "0.00".into()),
                    ("instantaneous_input_repl_kbps", "0.00".into()),
                    ("instantaneous_output_repl_kbps", "0.00".into()),
                    ("rejected_connections", "0".into()),
                    ("sync_full", "0".into()),
                    ("sync_partial_ok", "0".into()),
                    ("sync_partial_err", "0".into()),
                    ("expired_keys", s.expired.to_string()),
                    ("expired_stale_perc", "0.00".into()),
                    ("expired_time_cap_reached_count", "0".into()),
                    ("expire_cycle_cpu_milliseconds", "0".into()),
                    ("evicted_keys", "0".into()),
                    ("evicted_clients", "0".into()),
                    ("total_eviction_exceeded_time", "0".into()),
                    ("current_eviction_exceeded_time", "0".into()),
                    ("keyspace_hits", s.hits.to_string()),
                    ("keyspace_misses", s.misses.to_string()),
                    ("pubsub_channels", "0".into()),
                    ("pubsub_patterns", "0".into()),
                    ("pubsubshard_channels", "0".into()),
                    ("latest_fork_usec", "0".into()),
                    ("total_forks", s.saves.to_string()),
                    ("migrate_cached_sockets", "0".into()),
                    ("slave_expires_tracked_keys", "0".into()),
                    ("active_defrag_hits", "0".into()),
                    ("active_defrag_misses", "0".into()),
                    ("active_defrag_key_hits", "0".into()),
                    ("active_defrag_key_misses", "0".into()),
                    ("total_active_defrag_time", "0".into()),
                    ("current_active_defrag_time", "0".into()),
                    ("tracking_total_keys", "0".into()),
                    ("tracking_total_items", "0".into()),
                    ("tracking_total_prefixes", "0".into()),
                    ("unexpected_error_replies", "0".into()),
                    ("total_error_replies", errors.to_string()),
                    ("dump_payload_sanitizations", "0".into()),
                    (
                        "total_reads_processed",
                        (s.commands + s.connections).to_string(),
                    ),
                    ("total_writes_processed", s.commands.to_string()),
                    ("io_threaded_reads_processed", "0".into()),
                    ("io_threaded_writes_processed", "0".into()),
                    ("reply_buffer_shrinks", s.connections.to_string()),
                    ("reply_buffer_expands", "0".into()),
                ]);
                "Stats"
            }
            "replication" => {
                match &s.master {
                    None => f.extend([("role", "master".into()), ("connected_slaves", "0".into())]),
                    Some((host, port)) => f.extend([
                        ("role", "slave".into()),
                        ("master_host", host.clone()),
                        ("master_port", port.to_string()),
                        ("master_link_status", "down".into()),
                        ("master_last_io_seconds_ago", "-1".into()),
                        ("master_sync_in_progress", "0".into()),
                        ("slave_read_repl_offset", "0".into()),
                        ("slave_repl_offset", "0".into()),
                        ("master_link_down_since_seconds", "-1".into()),
                        ("slave_priority", "100".into()),
                        ("slave_read_only", "1".into()),
                        ("replica_announced", "1".into()),
                        ("connected_slaves", "0".into()),
                    ]),
                }
                f.extend([
                    ("master_failover_state", "no-failover".into()),
                    ("master_replid", s.replid.clone()),
                    ("master_replid2", "0".repeat(40)),
                    ("master_repl_offset", "0".into()),
                    ("second_repl_offset", "-1".into()),
                    ("repl_backlog_active", "0".into()),
                    ("repl_backlog_size", "1048576".into()),
                    ("repl_backlog_first_byte_offset", "0".into()),
                    ("repl_backlog_histlen", "0".into()),
                ]);
                "Replication"
            }
            "cpu" => {
                let secs = s.uptime as f64;
                let sys = format!("{:.6}", 0.007 + secs * 0.0009);
                let user = format!("{:.6}", 0.021 + secs * 0.0011);
                f.extend([
                    ("used_cpu_sys", sys.clone()),
                    ("used_cpu_user", user.clone()),
                    ("used_cpu_sys_children", "0.000000".into()),
                    ("used_cpu_user_children", "0.000000".into()),
                    ("used_cpu_sys_main_thread", sys),
                    ("used_cpu_user_main_thread", user),
                ]);
                "CPU"
            }
            "modules" => "Modules",
            "commandstats" => {
                out.push_str("# Commandstats\r\n");
                for (name, calls) in &s.cmdstats {
                    let usec = calls * 3;
                    let _ = write!(
                        out,
                        "cmdstat_{name}:calls={calls},usec={usec},usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"
                    );
                }
                continue;
            }
            "errorstats" => {
                out.push_str("# Errorstats\r\n");
                if s.seven {
                    for (e, n) in &s.errors {
                        let _ = write!(out, "errorstat_{e}:count={n}\r\n");
                    }
                }
                continue;
            }
            "latencystats" => {
                out.push_str("# Latencystats\r\n");
                for name in s.cmdstats.keys() {
                    let _ = write!(
                        out,
                        "latency_percentiles_usec_{name}:p50=3.007,p99=3.007,p99.9=3.007\r\n"
                    );
                }
                continue;
            }
            "cluster" => {
                f.push(("cluster_enabled", "0".into()));
                "Cluster"
            }
            _ => {
                out.push_str("# Keyspace\r\n");
                for (i, (keys, expires)) in s.dbs.iter().enumerate() {
                    if *keys > 0 {
                        let _ = write!(out, "db{i}:keys={keys},expires={expires},avg_ttl=0\r\n");
                    }
                }
                continue;
            }
        };
        let _ = write!(out, "# {title}\r\n");
        for (k, v) in f {
            if !s.seven && SEVEN_ONLY.contains(&k) {
                continue;
            }
            let _ = write!(out, "{k}:{v}\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_the_arguments() {
        assert_eq!(pick_sections(&[b"server".to_vec()]), vec!["server"]);
        let d = pick_sections(&[]);
        assert!(d.contains(&"keyspace") && !d.contains(&"commandstats"));
        let e = pick_sections(&[b"everything".to_vec()]);
        assert_eq!(e.len(), SECTIONS.len());
        assert!(pick_sections(&[b"nosuch".to_vec()]).is_empty());
    }

    #[test]
    fn figures_move_with_state() {
        let mut s = InfoState {
            version: "7.0.15".into(),
            seven: true,
            dbs: vec![(0, 0); 16],
            ..Default::default()
        };
        let before = render(&s, &["memory", "keyspace"]);
        s.data_bytes = 10_000;
        s.keys = 3;
        s.dbs[2] = (3, 1);
        let after = render(&s, &["memory", "keyspace"]);
        assert_ne!(before, after);
        assert!(after.contains("db2:keys=3,expires=1,avg_ttl=0\r\n"));
        assert!(render(&s, &["server"]).starts_with("# Server\r\nredis_version:7.0.15\r\n"));
        s.seven = false;
        assert!(!render(&s, &["server"]).contains("monotonic_clock"));
    }
}
