//! The file tailer against real files: real appends, renames, truncations,
//! deletions and restarts in temporary directories, no mocks.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mirage_agent::tail::{Line, ReadFrom, TailConfig, TailError, Tailer};

fn config(dir: &Path, paths: &[&str]) -> TailConfig {
    let mut c = TailConfig::new(paths.iter().map(|p| dir.join(p)));
    c.checkpoint_path = Some(dir.join("checkpoint.json"));
    // Tests drive polls by hand: a rotated file is closed as soon as it is
    // drained, unless a test sets a grace on purpose.
    c.rotate_grace = Duration::ZERO;
    c
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

fn texts(lines: &[Line]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8(l.bytes.clone()).expect("utf8"))
        .collect()
}

/// Polls and acknowledges everything, as a consumer that queued it would.
fn poll_ack(t: &mut Tailer) -> Vec<String> {
    let lines = t.poll();
    for l in &lines {
        t.ack(l.ack_token());
    }
    texts(&lines)
}

fn reopen(dir: &Path, paths: &[&str]) -> Tailer {
    Tailer::open(config(dir, paths)).expect("open tailer")
}

#[test]
fn appended_lines_are_delivered_with_offsets_and_partial_lines_wait() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("auth.log");
    append(&f, "one\ntwo\nthr");
    let mut t = reopen(dir.path(), &["auth.log"]);
    let lines = t.poll();
    assert_eq!(texts(&lines), ["one", "two"]);
    assert_eq!(lines[0].offset, 0);
    assert_eq!(lines[1].offset, 4);
    assert_eq!(&*lines[0].path, f.as_path());
    assert!(!lines[0].truncated && !lines[0].unterminated);
    // The partial line is held until its newline arrives.
    assert!(t.poll().is_empty());
    append(&f, "ee\r\nfour\n");
    let lines = t.poll();
    assert_eq!(texts(&lines), ["three\r", "four"]);
    assert_eq!(lines[0].offset, 8);
}

#[test]
fn a_file_that_does_not_exist_yet_is_picked_up_when_created() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = reopen(dir.path(), &["later.log"]);
    assert!(t.poll().is_empty());
    append(&dir.path().join("later.log"), "hello\n");
    assert_eq!(poll_ack(&mut t), ["hello"]);
}

#[test]
fn rename_rotation_reads_the_old_file_to_its_end_before_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "a1\na2\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["a1", "a2"]);

    // The writer holds the file open, as a daemon does until it gets SIGHUP.
    let mut writer = OpenOptions::new().append(true).open(&f).unwrap();
    writer.write_all(b"a3\n").unwrap();
    fs::rename(&f, dir.path().join("app.log.1")).unwrap();
    writer.write_all(b"a4\n").unwrap(); // still lands in the rotated file
    append(&f, "b1\n"); // the new file
    writer.write_all(b"a5\n").unwrap();
    append(&f, "b2\n");

    assert_eq!(poll_ack(&mut t), ["a3", "a4", "a5", "b1", "b2"]);
    append(&f, "b3\n");
    assert_eq!(poll_ack(&mut t), ["b3"]);
    // The drained, acknowledged old file is closed: only the new one remains.
    assert!(t.poll().is_empty());
    let status = t.status();
    assert_eq!(status.len(), 1, "{status:?}");
    assert_eq!(status[0].file.ino, fs::metadata(&f).unwrap().ino());
}

#[test]
fn a_rotated_file_keeps_being_read_during_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "a1\n");
    let mut c = config(dir.path(), &["app.log"]);
    c.rotate_grace = Duration::from_secs(3600);
    let mut t = Tailer::open(c).unwrap();
    assert_eq!(poll_ack(&mut t), ["a1"]);
    let mut writer = OpenOptions::new().append(true).open(&f).unwrap();
    fs::rename(&f, dir.path().join("app.log.1")).unwrap();
    append(&f, "b1\n");
    assert_eq!(poll_ack(&mut t), ["b1"]);
    // The daemon has not reopened its log yet: this line goes to the old file
    // after the rotation was noticed, and must still be delivered.
    writer.write_all(b"a2 late\n").unwrap();
    assert_eq!(poll_ack(&mut t), ["a2 late"]);
    assert!(t.status().iter().any(|s| s.rotated));
}

#[test]
fn an_unterminated_last_line_of_a_rotated_file_is_delivered_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "a1\na2-no-newline");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["a1"]);
    fs::rename(&f, dir.path().join("app.log.1")).unwrap();
    append(&f, "b1\n");
    let mut got = t.poll();
    got.extend(t.poll());
    assert_eq!(texts(&got), ["a2-no-newline", "b1"]);
    assert!(got[0].unterminated && !got[1].unterminated);
}

#[test]
fn copytruncate_restarts_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "old line 1\nold line 2\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["old line 1", "old line 2"]);
    let ino = fs::metadata(&f).unwrap().ino();

    // logrotate copytruncate: copy, then truncate in place (same inode).
    fs::copy(&f, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&f, "new\n");
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);
    assert_eq!(poll_ack(&mut t), ["new"]);

    // Truncated and refilled beyond the old offset before the next poll: the
    // size alone cannot tell, the fingerprint of the first bytes does.
    OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&f, "refilled line, longer than before\nsecond\n");
    assert_eq!(
        poll_ack(&mut t),
        ["refilled line, longer than before", "second"]
    );
}

#[test]
fn truncation_voids_acks_of_the_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "0123456789\nabcdefghij\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    let old = t.poll();
    assert_eq!(old.len(), 2);
    // `: > app.log`, then a short new line.
    File::create(&f).unwrap();
    append(&f, "x\n");
    let new = t.poll();
    assert_eq!(texts(&new), ["x"]);
    // A late ack of the old content (offset 22) must not move the new
    // content's checkpoint past its end.
    t.ack(old[1].ack_token());
    t.checkpoint().unwrap();
    drop(t);
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["x"]);
}

#[test]
fn deleted_and_recreated_file_is_followed_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "before\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["before"]);
    let mut writer = OpenOptions::new().append(true).open(&f).unwrap();
    writer.write_all(b"last words\n").unwrap();
    fs::remove_file(&f).unwrap();
    assert_eq!(poll_ack(&mut t), ["last words"]);
    assert!(t.poll().is_empty());
    append(&f, "reborn\n");
    assert_eq!(poll_ack(&mut t), ["reborn"]);
}

#[test]
fn restart_resumes_after_the_last_acked_line_and_repeats_only_unacked_ones() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    for i in 1..=10 {
        append(&f, &format!("line {i}\n"));
    }
    let mut t = reopen(dir.path(), &["app.log"]);
    let lines = t.poll();
    assert_eq!(lines.len(), 10);
    for l in &lines[..5] {
        t.ack(l.ack_token());
    }
    t.checkpoint().unwrap();
    // Crash after acking 6..8 but before they were checkpointed, with 9 and
    // 10 never acked at all.
    for l in &lines[5..8] {
        t.ack(l.ack_token());
    }
    drop(t);

    let mut t = reopen(dir.path(), &["app.log"]);
    let again = poll_ack(&mut t);
    assert_eq!(again, ["line 6", "line 7", "line 8", "line 9", "line 10"]);
    t.checkpoint().unwrap();
    append(&f, "line 11\n");
    drop(t);

    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["line 11"]);
}

#[test]
fn a_partial_line_at_restart_is_read_again_whole() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "done\nhalf");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["done"]);
    t.checkpoint().unwrap();
    drop(t);
    append(&f, " and the rest\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["half and the rest"]);
}

#[test]
fn rotation_while_stopped_drains_the_old_file_first() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "a1\na2\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    let lines = t.poll();
    t.ack(lines[0].ack_token()); // a2 read but not acknowledged
    t.checkpoint().unwrap();
    drop(t);

    // While the agent is down: more lines, rotation, lines in the new file.
    append(&f, "a3\n");
    fs::rename(&f, dir.path().join("app.log.1")).unwrap();
    append(&f, "b1\n");

    let mut t = reopen(dir.path(), &["app.log"]);
    let lines = t.poll();
    assert_eq!(texts(&lines), ["a2", "a3", "b1"]);
    // Rotated lines keep the name the file was followed as.
    assert!(lines.iter().all(|l| &*l.path == f.as_path()));
}

#[test]
fn fingerprint_detects_a_reused_inode_with_other_content() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "original first line\noriginal second line\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t).len(), 2);
    t.checkpoint().unwrap();
    drop(t);
    let ino = fs::metadata(&f).unwrap().ino();

    // Same (dev, inode), different and longer content: exactly what a reused
    // inode looks like to the checkpoint. Rewriting in place guarantees the
    // inode is the same, which delete + create cannot.
    let mut w = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&f)
        .unwrap();
    w.write_all(b"a completely different file, longer than the first one\nnext\n")
        .unwrap();
    drop(w);
    assert_eq!(fs::metadata(&f).unwrap().ino(), ino);

    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(
        poll_ack(&mut t),
        [
            "a completely different file, longer than the first one",
            "next"
        ]
    );
    t.checkpoint().unwrap();
    drop(t);

    // And through a real delete + create, whatever inode the filesystem picks.
    fs::remove_file(&f).unwrap();
    append(&f, "third incarnation of the log file, much longer still\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(
        poll_ack(&mut t),
        ["third incarnation of the log file, much longer still"]
    );
}

#[test]
fn a_grown_file_is_still_recognised_after_restart() {
    // Checkpointed while shorter than the fingerprint size: the stored prefix
    // is shorter, and must still match once the file has grown past it.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "short\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["short"]);
    t.checkpoint().unwrap();
    drop(t);
    append(&f, &format!("{}\n", "y".repeat(500)));
    let mut t = reopen(dir.path(), &["app.log"]);
    assert_eq!(poll_ack(&mut t), ["y".repeat(500)]);
}

#[test]
fn long_lines_are_capped_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    let mut c = config(dir.path(), &["app.log"]);
    c.max_line_bytes = 16;
    append(&f, &format!("{}\nshort\n", "x".repeat(100)));
    let mut t = Tailer::open(c.clone()).unwrap();
    let lines = t.poll();
    assert_eq!(texts(&lines), ["x".repeat(16), "short".into()]);
    assert!(lines[0].truncated && !lines[1].truncated);
    assert_eq!(lines[1].offset, 101);

    // A never-ending line is cut at the cap and delivered at once; a restart
    // acked inside it skips its tail instead of delivering it as a line.
    append(&f, &"z".repeat(40));
    let lines = t.poll();
    assert_eq!(texts(&lines), ["z".repeat(16)]);
    assert!(lines[0].truncated);
    t.ack(lines[0].ack_token());
    t.checkpoint().unwrap();
    drop(t);
    append(&f, &format!("{}\nafter\n", "z".repeat(40)));
    let mut t = Tailer::open(c).unwrap();
    assert_eq!(poll_ack(&mut t), ["after"]);
}

#[test]
fn patterns_follow_matching_files_and_do_not_reread_renamed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("svc.log");
    let other = dir.path().join("other.txt");
    append(&a, "a1\n");
    append(&other, "ignored\n");
    let mut t = reopen(dir.path(), &["svc.log*"]);
    assert_eq!(poll_ack(&mut t), ["a1"]);
    // svc.log.1 matches the pattern too: it is the same file, not a new one.
    fs::rename(&a, dir.path().join("svc.log.1")).unwrap();
    append(&a, "b1\n");
    assert_eq!(poll_ack(&mut t), ["b1"]);
    append(&dir.path().join("svc.log.1"), "a2\n");
    assert_eq!(poll_ack(&mut t), ["a2"]);
    let status = t.status();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|s| !s.rotated));
}

#[test]
fn read_from_end_skips_existing_content_only_at_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    append(&f, "history\nhalf");
    let mut c = config(dir.path(), &["app.log"]);
    c.read_from = ReadFrom::End;
    let mut t = Tailer::open(c).unwrap();
    assert!(t.poll().is_empty());
    // The tail of the incomplete line is not a line of its own.
    append(&f, " tail\nnew\n");
    assert_eq!(poll_ack(&mut t), ["new"]);
    // A rotation's new file is read from its start.
    fs::rename(&f, dir.path().join("app.log.1")).unwrap();
    append(&f, "fresh\n");
    assert_eq!(poll_ack(&mut t), ["fresh"]);
}

#[test]
fn large_backlogs_come_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    let text: String = (0..1000).map(|i| format!("line {i:04}\n")).collect();
    append(&f, &text);
    let mut c = config(dir.path(), &["app.log"]);
    c.max_batch_bytes = 1000;
    let mut t = Tailer::open(c).unwrap();
    let mut all = Vec::new();
    let mut polls = 0;
    loop {
        let got = poll_ack(&mut t);
        polls += 1;
        if got.is_empty() && !t.backlogged() {
            break;
        }
        all.extend(got);
    }
    assert!(polls > 10);
    let want: Vec<String> = (0..1000).map(|i| format!("line {i:04}")).collect();
    assert_eq!(all, want);
}

#[test]
fn a_corrupt_checkpoint_is_an_error_not_a_silent_reread() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("checkpoint.json"), "{not json").unwrap();
    let err = Tailer::open(config(dir.path(), &["app.log"])).unwrap_err();
    assert!(matches!(err, TailError::Checkpoint { .. }), "{err}");
}

#[test]
fn the_checkpoint_is_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("app.log"), "x\n");
    let mut t = reopen(dir.path(), &["app.log"]);
    poll_ack(&mut t);
    t.checkpoint().unwrap();
    let names: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(names.iter().all(|p| !p.to_string_lossy().ends_with(".tmp")));
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("checkpoint.json")).unwrap()).unwrap();
    assert_eq!(json["files"][0]["offset"], 2);
}

#[tokio::test]
async fn async_wrapper_waits_for_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.log");
    let mut c = config(dir.path(), &["app.log"]);
    c.poll_interval = Duration::from_millis(20);
    let mut t = mirage_agent::AsyncTailer::open(c).await.unwrap();
    let writer = {
        let f = f.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            append(&f, "async line\n");
        })
    };
    let lines = tokio::time::timeout(Duration::from_secs(10), t.next_batch())
        .await
        .expect("a line within 10 s");
    writer.await.unwrap();
    assert_eq!(texts(&lines), ["async line"]);
    t.ack(lines[0].ack_token());
    t.checkpoint().await.unwrap();
    let inner = t.into_inner().await;
    assert_eq!(inner.status()[0].acked_offset, 11);
}

/// A line's fingerprint (part of its record id) is the same whenever it is
/// read, however far the file had grown, and differs for other content at
/// the same place.
#[test]
fn line_fingerprints_are_stable_across_reads_and_tell_contents_apart() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("auth.log");
    append(&f, "first\n");
    let mut c = config(dir.path(), &["auth.log"]);
    c.checkpoint_path = None;
    c.fingerprint_bytes = 16;
    let early = Tailer::open(c.clone()).unwrap().poll();
    // The file grows past the fingerprint size; both lines read again.
    append(&f, "second line, longer than sixteen bytes\nthird\n");
    let late = Tailer::open(c.clone()).unwrap().poll();
    assert_eq!(early[0].fingerprint, late[0].fingerprint);
    assert_ne!(late[0].fingerprint, late[1].fingerprint);
    // Lines past the fingerprint size share the file's full fingerprint.
    assert_eq!(late[1].fingerprint, late[2].fingerprint);
    // Same offsets, other content (a rewritten file): other fingerprints.
    fs::write(&f, "FIRST\nsecond line, longer than sixteen bytes\nthird\n").unwrap();
    let other = Tailer::open(c).unwrap().poll();
    assert_eq!(other[0].offset, late[0].offset);
    assert_ne!(other[0].fingerprint, late[0].fingerprint);
    assert_ne!(other[2].fingerprint, late[2].fingerprint);
}
