//! The transfer after `@RSYNCD: OK` (protocol 30/31): option parsing,
//! `setup_protocol` (compat flags, checksum negotiation, seed), then the
//! server side of a download / listing (`do_server_sender`) or an upload
//! (`do_server_recv`: generator and receiver in one task).

use std::sync::Arc;

use mirage_core::{EventKind, PayloadData};
use mirage_proto::rsync::{
    self as proto, FileEntry, FlistDecoder, FlistEncoder, FlistItem, FlistOpts, NDX_DONE, NdxCodec,
    SumHead, cf, item, msg,
};
use serde_json::{Map, json};

use super::{Stop, VirtualEntry, VirtualModule, Wire, attack, command};
use crate::quarantine::Quarantine;

/// What a transfer needs from the session so far.
pub(crate) struct Context<'a> {
    pub module: &'a VirtualModule,
    pub protocol: u32,
    pub max_file_list: usize,
    pub quarantine: &'a Arc<Quarantine>,
    pub user: Option<Vec<u8>>,
}

/// The options of a `--server` command line that change the wire format.
#[derive(Debug, Default, Clone)]
pub struct ServerArgs {
    /// `--server` was given.
    pub server: bool,
    /// `--sender`: the server sends (download or listing).
    pub sender: bool,
    /// `-r`.
    pub recursive: bool,
    /// `-d`.
    pub dirs: bool,
    /// `-o`.
    pub uid: bool,
    /// `-g`.
    pub gid: bool,
    /// `-l`.
    pub links: bool,
    /// `--devices` (`-D`).
    pub devices: bool,
    /// `--specials` (`-D`).
    pub specials: bool,
    /// `-H`.
    pub hard_links: bool,
    /// `-c`.
    pub checksum: bool,
    /// `-z`.
    pub compress: bool,
    /// `--numeric-ids`.
    pub numeric_ids: bool,
    /// Any `--delete*`, or `-m`: the client sends its filter list.
    pub wants_filters: bool,
    /// `--checksum-choice` given (no negotiation then).
    pub checksum_choice: Option<String>,
    /// `--compress-choice` given.
    pub compress_choice: Option<String>,
    /// The `-e.xxx` client capability letters.
    pub client_info: String,
    /// Options this emulator does not implement.
    pub unsupported: Vec<String>,
    /// Paths after the `.` placeholder.
    pub paths: Vec<Vec<u8>>,
}

impl ServerArgs {
    /// Parse a daemon client's argument list.
    pub fn parse(args: &[Vec<u8>]) -> ServerArgs {
        let mut a = ServerArgs::default();
        let mut positional = Vec::new();
        for raw in args {
            let s = String::from_utf8_lossy(raw);
            if let Some(long) = s.strip_prefix("--") {
                let (name, value) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (long, None),
                };
                match name {
                    "server" => a.server = true,
                    "sender" => a.sender = true,
                    "recursive" => a.recursive = true,
                    "dirs" => a.dirs = true,
                    "numeric-ids" => a.numeric_ids = true,
                    "devices" => a.devices = true,
                    "specials" => a.specials = true,
                    "prune-empty-dirs" => a.wants_filters = true,
                    n if n.starts_with("del") => a.wants_filters = true,
                    "checksum-choice" | "cc" => {
                        a.checksum_choice =
                            value.map(|v| v.split(',').next().unwrap_or("").to_owned())
                    }
                    "compress-choice" | "zc" => a.compress_choice = value.map(str::to_owned),
                    "acls" | "xattrs" | "atimes" | "crtimes" | "files-from" | "from0"
                    | "protect-args" | "secluded-args" | "iconv" | "write-batch" | "read-batch"
                    | "only-write-batch" | "fake-super" => a.unsupported.push(format!("--{name}")),
                    _ => {}
                }
            } else if let Some(short) = s.strip_prefix('-')
                && !short.is_empty()
            {
                for (i, ch) in short.char_indices() {
                    match ch {
                        'e' => {
                            a.client_info = short[i + 1..].to_owned();
                            break;
                        }
                        'r' => a.recursive = true,
                        'd' => a.dirs = true,
                        'o' => a.uid = true,
                        'g' => a.gid = true,
                        'l' => a.links = true,
                        'D' => {
                            a.devices = true;
                            a.specials = true;
                        }
                        'H' => a.hard_links = true,
                        'c' => a.checksum = true,
                        'z' => a.compress = true,
                        'm' => a.wants_filters = true,
                        'A' | 'X' | 'U' | 'N' | 's' => a.unsupported.push(format!("-{ch}")),
                        _ => {}
                    }
                }
            } else {
                positional.push(raw.clone());
            }
        }
        // The first operand is the "." placeholder.
        if !positional.is_empty() {
            positional.remove(0);
        }
        a.paths = positional;
        a
    }

    fn has(&self, c: char) -> bool {
        self.client_info.contains(c)
    }
}

/// Checksums the honeypot computes for whole files, strongest first; the
/// list it offers in the negotiation.
const XFER_CHECKSUMS: &[&str] = &["md5", "sha1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XferSum {
    Md5,
    Sha1,
}

impl XferSum {
    fn from_name(n: &str) -> Option<Self> {
        match n {
            "md5" => Some(XferSum::Md5),
            "sha1" => Some(XferSum::Sha1),
            _ => None,
        }
    }
    fn len(self) -> usize {
        match self {
            XferSum::Md5 => 16,
            XferSum::Sha1 => 20,
        }
    }
    fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            XferSum::Md5 => md5::Md5::digest(data).to_vec(),
            XferSum::Sha1 => sha1::Sha1::digest(data).to_vec(),
        }
    }
}

/// Run the transfer the arguments ask for.
pub(crate) async fn run(
    w: &mut Wire<'_>,
    ctx: &Context<'_>,
    raw_args: &[Vec<u8>],
) -> Result<(), Stop> {
    let args = ServerArgs::parse(raw_args);
    let module = ctx.module;
    // Traversal in the requested paths is recorded; like the daemon's
    // sanitize_path the paths are then clipped to the module.
    for p in &args.paths {
        if has_traversal(p) {
            let mut ev = Map::new();
            ev.insert("path".into(), json!(super::text(p).0));
            ev.insert("module".into(), json!(module.cfg.name));
            attack(
                w.session,
                "rsync.path_traversal",
                format!("rsync request escaping module {}", module.cfg.name),
                ev,
            )
            .await;
        }
    }
    if !args.server {
        return Err(Stop::Proto(
            "arguments without --server".into(),
            raw_args.concat(),
        ));
    }

    // setup_protocol: compat flags, negotiation, seed; all before multiplexing.
    let mut compat = cf::SYMLINK_TIMES | cf::SYMLINK_ICONV;
    for (c, f) in [
        ('f', cf::SAFE_FLIST),
        ('x', cf::AVOID_XATTR_OPTIM),
        ('C', cf::CHKSUM_SEED_FIX),
        ('I', cf::INPLACE_PARTIAL_DIR),
        ('v', cf::VARINT_FLIST_FLAGS),
    ] {
        if args.has(c) {
            compat |= f;
        }
    }
    let negotiate = compat & cf::VARINT_FLIST_FLAGS != 0;
    let mut setup = Vec::new();
    if args.has('V') {
        // A 3.2.0 pre-release spelling: one byte.
        compat |= cf::VARINT_FLIST_FLAGS;
        setup.push(compat as u8);
    } else {
        proto::put_varint(&mut setup, compat as i32);
    }
    let negotiate = negotiate || args.has('V');
    let send_csum_list = negotiate && args.checksum_choice.is_none();
    let send_zlist = negotiate && args.compress && args.compress_choice.is_none();
    if send_csum_list {
        proto::put_vstring(&mut setup, XFER_CHECKSUMS.join(" ").as_bytes());
    }
    if send_zlist {
        proto::put_vstring(&mut setup, b"none");
    }
    w.send(&setup);
    w.flush().await?;
    let sum = if send_csum_list {
        let list = w
            .read("checksum list", |c| {
                c.vstring(proto::MAX_NSTR).map(<[u8]>::to_vec)
            })
            .await?;
        let list = String::from_utf8_lossy(&list).into_owned();
        XFER_CHECKSUMS
            .iter()
            .find(|n| list.split_whitespace().any(|c| c == **n))
            .and_then(|n| XferSum::from_name(n))
    } else if let Some(choice) = &args.checksum_choice {
        XferSum::from_name(choice)
    } else {
        Some(XferSum::Md5)
    };
    let zchoice = if send_zlist {
        let list = w
            .read("compression list", |c| {
                c.vstring(proto::MAX_NSTR).map(<[u8]>::to_vec)
            })
            .await?;
        String::from_utf8_lossy(&list)
            .split_whitespace()
            .any(|c| c == "none")
    } else {
        !args.compress || args.compress_choice.as_deref() == Some("none")
    };
    let mut seed = [0u8; 4];
    let _ = getrandom::fill(&mut seed);
    seed[3] &= 0x7f;
    w.send(&seed);
    w.start_mux();

    let fail = |reason: &str| {
        format!(
            "rsync: {reason} (not emulated)\nrsync error: requested action not supported (code 4) at clientserver.c(1109) [{}=3.2.7]\n",
            if args.sender { "sender" } else { "Receiver" }
        )
    };
    let Some(sum) = sum else {
        w.message(msg::ERROR, &fail("no common checksum"));
        return Err(Stop::Proto("no common checksum choice".into(), Vec::new()));
    };
    if !zchoice || !args.unsupported.is_empty() {
        let what = if args.unsupported.is_empty() {
            "compression".to_owned()
        } else {
            args.unsupported.join(" ")
        };
        w.message(msg::ERROR, &fail(&what));
        w.flush().await?;
        command(w.session, "unsupported", &[what.as_bytes()], true).await;
        return Ok(());
    }
    let opts = FlistOpts {
        varint_flags: compat & cf::VARINT_FLIST_FLAGS != 0,
        uid: args.uid,
        gid: args.gid,
        links: args.links,
        devices: args.devices,
        specials: args.specials,
        hard_links: args.hard_links,
        checksum_len: if args.checksum { sum.len() } else { 0 },
        protocol: ctx.protocol,
    };
    if args.sender {
        send(w, ctx, &args, opts, sum).await
    } else {
        receive(w, ctx, &args, opts, sum).await
    }
}

fn has_traversal(p: &[u8]) -> bool {
    p.split(|&b| b == b'/').any(|c| c == b"..")
}

/// Read the filter list (rules are recorded with the transfer).
async fn read_filters(w: &mut Wire<'_>) -> Result<Vec<Vec<u8>>, Stop> {
    let mut rules = Vec::new();
    loop {
        match w.decode("filter list", proto::take_filter).await? {
            None => return Ok(rules),
            Some(r) => {
                if rules.len() >= 1024 {
                    return Err(Stop::Proto("filter list: too many rules".into(), r));
                }
                rules.push(r);
            }
        }
    }
}

/// A file-list entry the sender serves, with its content.
struct Served {
    entry: FileEntry,
    top_dir: bool,
    no_content: bool,
    data: Option<Arc<[u8]>>,
}

fn to_entry(name: &str, v: &VirtualEntry) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        len: v.len(),
        mtime: v.mtime,
        mode: v.mode,
        ..Default::default()
    }
}

/// Clip a requested path to the module, as `sanitize_path` does.
fn clip(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// The server as sender: listings and downloads.
async fn send(
    w: &mut Wire<'_>,
    ctx: &Context<'_>,
    args: &ServerArgs,
    opts: FlistOpts,
    sum: XferSum,
) -> Result<(), Stop> {
    let filters = read_filters(w).await?;
    if !filters.is_empty() {
        let refs: Vec<&[u8]> = filters.iter().map(|f| f.as_slice()).collect();
        command(w.session, "filter", &refs, false).await;
    }
    let module = ctx.module;
    let name = &module.cfg.name;
    let mut list: Vec<Served> = Vec::new();
    let mut io_error = 0;
    let mut paths = args.paths.clone();
    if paths.is_empty() {
        paths.push(format!("{name}/").into_bytes());
    }
    for p in &paths {
        let p = String::from_utf8_lossy(p);
        let rest = p.strip_prefix(name.as_str()).unwrap_or(&p);
        let trailing = rest.ends_with('/') || rest.is_empty() || rest.ends_with("/.");
        let clipped = clip(rest);
        let key = if clipped.is_empty() {
            "."
        } else {
            clipped.as_str()
        };
        let Some(v) = module.get(key) else {
            io_error |= 1;
            let text = format!(
                "rsync: [sender] link_stat \"/{clipped}\" (in {name}) failed: No such file or directory (2)\n"
            );
            w.message(msg::ERROR, &text);
            continue;
        };
        if v.dir && (trailing || key == ".") {
            // The directory's content, named relative to it.
            list.push(Served {
                entry: to_entry(".", v),
                top_dir: true,
                no_content: false,
                data: None,
            });
            if args.recursive || args.dirs {
                for c in module.children(key, args.recursive) {
                    let rel = if key == "." {
                        c.path.clone()
                    } else {
                        c.path[key.len() + 1..].to_owned()
                    };
                    list.push(Served {
                        entry: to_entry(&rel, c),
                        top_dir: false,
                        no_content: c.dir && !args.recursive,
                        data: (!c.dir).then(|| c.data.clone()),
                    });
                }
            }
        } else {
            let base = key.rsplit('/').next().unwrap_or(key);
            list.push(Served {
                entry: to_entry(base, v),
                top_dir: v.dir,
                no_content: v.dir && !args.recursive,
                data: (!v.dir).then(|| v.data.clone()),
            });
            if v.dir && args.recursive {
                for c in module.children(key, true) {
                    let rel = format!("{base}/{}", &c.path[key.len() + 1..]);
                    list.push(Served {
                        entry: to_entry(&rel, c),
                        top_dir: false,
                        no_content: false,
                        data: (!c.dir).then(|| c.data.clone()),
                    });
                }
            }
        }
    }
    list.sort_by(|a, b| {
        proto::flist_cmp(
            &a.entry.name,
            a.entry.is_dir(),
            &b.entry.name,
            b.entry.is_dir(),
        )
    });
    list.dedup_by(|a, b| a.entry.name == b.entry.name);

    let mut out = Vec::new();
    let mut enc = FlistEncoder::new(opts);
    for s in &list {
        let csum = match (&s.data, opts.checksum_len) {
            (Some(d), n) if n > 0 => sum.digest(d),
            _ => Vec::new(),
        };
        enc.entry(&mut out, &s.entry, s.top_dir, s.no_content, &csum);
    }
    enc.end(&mut out, io_error);
    if !args.numeric_ids {
        // Every file is root's: the id lists hold only their terminators.
        if args.uid {
            proto::put_varint(&mut out, 0);
        }
        if args.gid {
            proto::put_varint(&mut out, 0);
        }
    }
    w.send(&out);
    w.flush().await?;
    if list.is_empty() {
        return Ok(());
    }

    let (mut rx, mut tx) = (NdxCodec::default(), NdxCodec::default());
    let mut phase = 0;
    loop {
        let ndx = read_ndx(w, &mut rx).await?;
        if ndx == NDX_DONE {
            phase += 1;
            if phase > 2 {
                break;
            }
            let mut o = Vec::new();
            tx.write(&mut o, NDX_DONE);
            w.send(&o);
            continue;
        }
        let Some(s) = usize::try_from(ndx).ok().and_then(|i| list.get(i)) else {
            return Err(Stop::Proto(format!("invalid file index {ndx}"), Vec::new()));
        };
        let (iflags, basis, xname) = read_attrs(w).await?;
        let mut o = Vec::new();
        tx.write(&mut o, ndx);
        o.extend_from_slice(&iflags.to_le_bytes());
        if let Some(b) = basis {
            o.push(b);
        }
        if let Some(x) = &xname {
            proto::put_vstring(&mut o, x);
        }
        if iflags & item::TRANSFER == 0 {
            w.send(&o);
            continue;
        }
        let head = w.read("sum header", SumHead::read).await?;
        skip(w, head.sums_len()).await?;
        let Some(data) = &s.data else {
            return Err(Stop::Proto(
                "transfer of a directory requested".into(),
                s.entry.name.clone(),
            ));
        };
        let path = format!(
            "{}/{}",
            module.cfg.name,
            String::from_utf8_lossy(&s.entry.name)
        );
        command(w.session, "download", &[path.as_bytes()], false).await;
        head.write(&mut o);
        for chunk in data.chunks(32 * 1024) {
            proto::put_i32(&mut o, chunk.len() as i32);
            o.extend_from_slice(chunk);
            if o.len() >= 64 * 1024 {
                w.send(&o);
                o.clear();
                w.flush().await?;
            }
        }
        proto::put_i32(&mut o, 0);
        o.extend_from_slice(&sum.digest(data));
        w.send(&o);
    }
    let mut o = Vec::new();
    tx.write(&mut o, NDX_DONE);
    // handle_stats: total read, total written, total size, then the file
    // list build and transfer times.
    let total: u64 = list
        .iter()
        .filter(|s| !s.entry.is_dir())
        .map(|s| s.entry.len)
        .sum();
    let read = w.session.bytes_in();
    for v in [read, w.session.bytes_out(), total, 0, 0] {
        proto::put_varlong(&mut o, v as i64, 3);
    }
    w.send(&o);
    w.flush().await?;
    final_goodbye(w, ctx.protocol, &mut rx, &mut tx, true).await
}

/// `read_final_goodbye`: an `NDX_DONE`, and from protocol 31 one more
/// after echoing it (the sender echoes).
async fn final_goodbye(
    w: &mut Wire<'_>,
    protocol: u32,
    rx: &mut NdxCodec,
    tx: &mut NdxCodec,
    echo: bool,
) -> Result<(), Stop> {
    let n = read_ndx(w, rx).await?;
    if n != NDX_DONE {
        return Err(Stop::Proto(
            format!("invalid packet at end of run ({n})"),
            Vec::new(),
        ));
    }
    if protocol >= 31 {
        if echo {
            let mut o = Vec::new();
            tx.write(&mut o, NDX_DONE);
            w.send(&o);
            w.flush().await?;
        }
        let _ = read_ndx(w, rx).await?;
    }
    Ok(())
}

async fn read_ndx(w: &mut Wire<'_>, rx: &mut NdxCodec) -> Result<i32, Stop> {
    let (n, state) = w
        .read("file index", |c| {
            let mut s = *rx;
            s.read(c).map(|n| (n, s))
        })
        .await?;
    *rx = state;
    Ok(n)
}

/// Item flags and what they announce.
async fn read_attrs(w: &mut Wire<'_>) -> Result<(u16, Option<u8>, Option<Vec<u8>>), Stop> {
    w.read("item flags", |c| {
        let iflags = c.u16()?;
        let basis = if iflags & item::BASIS_TYPE_FOLLOWS != 0 {
            Some(c.u8()?)
        } else {
            None
        };
        let xname = if iflags & item::XNAME_FOLLOWS != 0 {
            Some(c.vstring(proto::MAX_NAME)?.to_vec())
        } else {
            None
        };
        Ok((iflags, basis, xname))
    })
    .await
}

/// Consume `n` data bytes without keeping them.
async fn skip(w: &mut Wire<'_>, mut n: usize) -> Result<(), Stop> {
    while n > 0 {
        let b = w.take_some(n).await?;
        n -= b.len();
    }
    Ok(())
}

/// Paths whose writing is an attack technique: (needle, technique).
const WATCHED: &[(&str, &str)] = &[
    ("authorized_keys", "rsync.authorized_keys_write"),
    ("cron", "rsync.cron_write"),
    (".bashrc", "rsync.startup_write"),
    (".profile", "rsync.startup_write"),
    ("rc.local", "rsync.startup_write"),
    ("systemd/system", "rsync.startup_write"),
    ("ld.so.preload", "rsync.startup_write"),
    ("/etc/passwd", "rsync.account_write"),
    ("/etc/shadow", "rsync.account_write"),
    ("sudoers", "rsync.account_write"),
];

/// The server as receiver: uploads.
async fn receive(
    w: &mut Wire<'_>,
    ctx: &Context<'_>,
    args: &ServerArgs,
    opts: FlistOpts,
    sum: XferSum,
) -> Result<(), Stop> {
    let module = ctx.module;
    if module.cfg.read_only {
        w.message(msg::ERROR, "ERROR: module is read only\n");
        w.message(
            msg::ERROR,
            "rsync error: syntax or usage error (code 1) at main.c(1110) [Receiver=3.2.7]\n",
        );
        w.flush().await?;
        command(w.session, "upload", &[b"read-only module"], true).await;
        return Ok(());
    }
    if args.wants_filters {
        let filters = read_filters(w).await?;
        if !filters.is_empty() {
            let refs: Vec<&[u8]> = filters.iter().map(|f| f.as_slice()).collect();
            command(w.session, "filter", &refs, false).await;
        }
    }
    let mut dec = FlistDecoder::new(opts);
    let mut files: Vec<FileEntry> = Vec::new();
    loop {
        let item = w.decode("file list", |buf| dec.next(buf)).await?;
        match item {
            FlistItem::End { .. } => break,
            FlistItem::Entry(e) => {
                if files.len() >= ctx.max_file_list {
                    return Err(Stop::Proto(
                        format!("file list longer than {} entries", ctx.max_file_list),
                        e.name,
                    ));
                }
                files.push(e);
            }
        }
    }
    if !args.numeric_ids {
        for on in [args.uid, args.gid] {
            if !on {
                continue;
            }
            for _ in 0..=65536 {
                let id = w.read("id list", |c| c.varint()).await?;
                if id == 0 {
                    break;
                }
                w.read("id name", |c| {
                    let n = usize::from(c.u8()?);
                    c.bytes(n).map(|_| ())
                })
                .await?;
            }
        }
    }
    files.sort_by(|a, b| proto::flist_cmp(&a.name, a.is_dir(), &b.name, b.is_dir()));

    // Record what the list holds that matters: suspicious names, symlinks
    // that leave the module.
    let dest = args
        .paths
        .first()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let dest_dir = clip(dest.strip_prefix(module.cfg.name.as_str()).unwrap_or(&dest));
    let full = |name: &[u8]| -> String {
        let n = String::from_utf8_lossy(name);
        if dest_dir.is_empty() {
            n.into_owned()
        } else {
            format!("{dest_dir}/{n}")
        }
    };
    for f in &files {
        let path = full(&f.name);
        let abs = format!("/{path}");
        let mut hit = WATCHED
            .iter()
            .find(|(needle, _)| abs.contains(needle))
            .map(|(_, t)| *t);
        if has_traversal(&f.name) || has_traversal(dest.as_bytes()) {
            hit = Some("rsync.path_traversal");
        }
        if let Some(target) = &f.link
            && (target.starts_with(b"/") || has_traversal(target))
        {
            hit = Some("rsync.symlink_escape");
        }
        if let Some(t) = hit {
            let mut ev = Map::new();
            ev.insert("module".into(), json!(module.cfg.name));
            ev.insert("path".into(), json!(super::text(path.as_bytes()).0));
            ev.insert("size".into(), json!(f.len));
            ev.insert("mode".into(), json!(format!("{:o}", f.mode)));
            if let Some(l) = &f.link {
                ev.insert("link_target".into(), json!(super::text(l).0));
            }
            attack(
                w.session,
                t,
                format!("rsync upload to {}/{path}", module.cfg.name),
                ev,
            )
            .await;
        }
    }

    // Generator: ask for every regular file with an empty checksum header.
    let (mut rx, mut tx) = (NdxCodec::default(), NdxCodec::default());
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate() {
        if f.is_file() {
            tx.write(&mut out, i as i32);
            out.extend_from_slice(&(item::TRANSFER | item::IS_NEW).to_le_bytes());
            SumHead::default().write(&mut out);
        }
    }
    tx.write(&mut out, NDX_DONE);
    w.send(&out);
    w.flush().await?;

    // Receiver: file data until the sender has ended its phases.
    let mut dones = 0;
    loop {
        let ndx = read_ndx(w, &mut rx).await?;
        if ndx == NDX_DONE {
            dones += 1;
            let mut o = Vec::new();
            match dones {
                // The sender finished phase 0: the redo phase and phase 2
                // are empty, then the generator's goodbye.
                1 => {
                    for _ in 0..3 {
                        tx.write(&mut o, NDX_DONE);
                    }
                }
                3 if ctx.protocol < 31 => break,
                4 => {
                    tx.write(&mut o, NDX_DONE);
                    w.send(&o);
                    break;
                }
                _ => {}
            }
            w.send(&o);
            w.flush().await?;
            continue;
        }
        let Some(f) = usize::try_from(ndx).ok().and_then(|i| files.get(i)) else {
            return Err(Stop::Proto(format!("invalid file index {ndx}"), Vec::new()));
        };
        if !f.is_file() {
            return Err(Stop::Proto(
                "data for a non-file entry".into(),
                f.name.clone(),
            ));
        }
        let (iflags, _, _) = read_attrs(w).await?;
        if iflags & item::TRANSFER == 0 {
            continue;
        }
        let head = w.read("sum header", SumHead::read).await?;
        skip(w, head.sums_len()).await?;
        let path = full(&f.name);
        receive_file(w, ctx, &path, sum).await?;
    }
    w.flush().await?;
    Ok(())
}

/// Literal tokens of one file into the quarantine, then its checksum.
async fn receive_file(
    w: &mut Wire<'_>,
    ctx: &Context<'_>,
    path: &str,
    sum: XferSum,
) -> Result<(), Stop> {
    use sha2::Digest;
    let mut upload = ctx.quarantine.begin();
    let mut head: Vec<u8> = Vec::new();
    let mut md5 = md5::Md5::new();
    let mut sha1 = sha1::Sha1::new();
    let mut io_failed = false;
    loop {
        let token = w.read("data token", |c| c.i32()).await?;
        if token == 0 {
            break;
        }
        if token < 0 {
            // A block reference: impossible without a basis file.
            return Err(Stop::Proto(
                format!("block match token {token} without a basis"),
                path.as_bytes().to_vec(),
            ));
        }
        let mut n = token as usize;
        if n > proto::MAX_TOKEN {
            return Err(Stop::Proto(
                format!("literal token of {n} bytes"),
                path.as_bytes().to_vec(),
            ));
        }
        while n > 0 {
            let b = w.take_some(n).await?;
            n -= b.len();
            if head.len() < super::PAYLOAD_INLINE {
                let k = (super::PAYLOAD_INLINE - head.len()).min(b.len());
                head.extend_from_slice(&b[..k]);
            }
            match sum {
                XferSum::Md5 => md5.update(&b),
                XferSum::Sha1 => sha1.update(&b),
            }
            if !io_failed && upload.write(&b).is_err() {
                io_failed = true;
            }
        }
    }
    let theirs = w
        .read("file checksum", |c| c.bytes(sum.len()).map(<[u8]>::to_vec))
        .await?;
    let ours = match sum {
        XferSum::Md5 => md5.finalize().to_vec(),
        XferSum::Sha1 => sha1.finalize().to_vec(),
    };
    let len = upload.len();
    let stored = match upload.finish() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "quarantine write failed");
            return Ok(());
        }
    };
    let full = format!("{}/{path}", ctx.module.cfg.name);
    let mut args: Vec<Vec<u8>> = vec![full.into_bytes(), len.to_string().into_bytes()];
    if let Some(u) = &ctx.user {
        args.push(u.clone());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    command(w.session, "upload", &refs, theirs != ours).await;
    let data = PayloadData {
        data_b64: {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(&head)
        },
        sha256: stored.sha256.clone(),
        len: stored.len,
        truncated: (head.len() as u64) < stored.len,
    };
    w.session
        .emit(EventKind::Payload {
            data,
            stored: stored.stored.clone(),
        })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_of_real_clients() {
        let a: Vec<Vec<u8>> = ["--server", "--sender", "-de.LsfxCIvu", ".", "backup/"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let p = ServerArgs::parse(&a);
        assert!(p.server && p.sender && p.dirs && !p.recursive);
        assert_eq!(p.client_info, ".LsfxCIvu");
        assert_eq!(p.paths, vec![b"backup/".to_vec()]);
        let a: Vec<Vec<u8>> = [
            "--server",
            "-vlogDtpre.iLsfxCIvu",
            "--delete",
            ".",
            "www/sub/",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let p = ServerArgs::parse(&a);
        assert!(!p.sender && p.recursive && p.uid && p.gid && p.links && p.devices);
        assert!(p.wants_filters && p.unsupported.is_empty());
        assert_eq!(clip("/../../etc/./x/"), "etc/x");
    }
}
