//! The Docker volume plugin at the protocol level, over its unix socket, without Docker:
//! activation, create/get/list/path, bad options refused with the reason, the mount-ID
//! multiset, idempotent remove and unmount, hard size limits (ENOSPC), snapshot on the last
//! unmount and clones from a snapshot, a failing mount, and the state surviving kill -9.

use qstore::Repository;
use qstore_volume::client::call;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

struct Plugin {
    child: Child,
    socket: PathBuf,
}

impl Plugin {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Plugin {
        Plugin::start_with(dir, env, &dir.join("no-docker.sock"), "30s")
    }

    fn start_with(dir: &Path, env: &[(&str, &str)], docker: &Path, every: &str) -> Plugin {
        let socket = dir.join("plugin.sock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qstore"));
        cmd.args([
            "--repo",
            dir.join("repo").to_str().unwrap(),
            "volume-plugin",
        ])
        .args(["--root", dir.join("root").to_str().unwrap()])
        .args(["--socket", socket.to_str().unwrap()])
        .args(["--docker-socket", docker.to_str().unwrap()])
        .args(["--reconcile-every", every])
        .stderr(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let p = Plugin { child, socket };
        for _ in 0..200 {
            if call(&p.socket, "/Plugin.Activate", &json!({})).is_ok() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the plugin did not start");
    }

    fn call(&self, endpoint: &str, body: Value) -> Value {
        call(&self.socket, endpoint, &body).unwrap()
    }

    fn ok(&self, endpoint: &str, body: Value) -> Value {
        let v = self.call(endpoint, body.clone());
        assert_eq!(v["Err"], "", "{endpoint} {body}: {v}");
        v
    }

    fn err(&self, endpoint: &str, body: Value) -> String {
        let v = self.call(endpoint, body.clone());
        let e = v["Err"].as_str().unwrap_or("").to_string();
        assert!(!e.is_empty(), "{endpoint} {body} should fail: {v}");
        e
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(p: &Plugin) -> Vec<String> {
    p.ok("/VolumeDriver.List", json!({}))["Volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["Name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_volume_plugin_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let p = Plugin::start(dir.path(), &[("QSTORE_VOLUME_FAIL_MOUNT", "broken")]);
    assert_eq!(
        p.call("/Plugin.Activate", json!({}))["Implements"],
        json!(["VolumeDriver"])
    );
    assert_eq!(
        p.call("/VolumeDriver.Capabilities", json!({}))["Capabilities"]["Scope"],
        "local"
    );

    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "m", "Opts": {"tier": "memory", "size": "1m"}}),
    );
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "d", "Opts": {"tier": "disk", "size": "16m"}}),
    );
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "broken", "Opts": {"tier": "memory", "size": "1m"}}),
    );
    let before = names(&p);
    assert_eq!(before, ["broken", "d", "m"]);

    // Bad options and names: refused with the reason, nothing created.
    for (name, opts, why) in [
        ("x", json!({"tier": "ssd", "size": "1g"}), "tier=ssd"),
        ("x", json!({"tier": "memory"}), "size is required"),
        ("x", json!({"tier": "memory"}), "unless from=REF:PATH"),
        ("x", json!({"size": "lots"}), "not like"),
        (
            "x",
            json!({"size": "1g", "colour": "red"}),
            "unknown option colour",
        ),
        (
            "x",
            json!({"size": "1g", "from": "main:volumes/none"}),
            "from=main:volumes/none",
        ),
        ("a/b", json!({"size": "1g"}), "no '/'"),
        ("a..b", json!({"size": "1g"}), "no '/' or '..'"),
    ] {
        let e = p.err("/VolumeDriver.Create", json!({"Name": name, "Opts": opts}));
        assert!(e.contains(why), "{name} {opts}: {e}");
    }
    assert_eq!(names(&p), before);

    // Mount IDs are a multiset; unknown IDs and volumes unmount fine.
    let mp = p.ok("/VolumeDriver.Mount", json!({"Name": "m", "ID": "A"}))["Mountpoint"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok("/VolumeDriver.Mount", json!({"Name": "m", "ID": "A"}));
    p.ok("/VolumeDriver.Mount", json!({"Name": "m", "ID": "B"}));
    assert_eq!(
        p.ok("/VolumeDriver.Path", json!({"Name": "m"}))["Mountpoint"],
        mp.as_str()
    );
    let g = p.ok("/VolumeDriver.Get", json!({"Name": "m"}));
    assert_eq!(g["Volume"]["Status"]["mounts"], 3);
    assert!(g["Volume"]["CreatedAt"].as_str().unwrap().ends_with('Z'));
    p.ok(
        "/VolumeDriver.Unmount",
        json!({"Name": "m", "ID": "never-mounted"}),
    );
    p.ok("/VolumeDriver.Unmount", json!({"Name": "gone", "ID": "A"}));
    let e = p.err("/VolumeDriver.Remove", json!({"Name": "m"}));
    assert!(e.contains("in use (3 mounts)"), "{e}");

    // A hard size limit: a write past 1 MiB fails with ENOSPC.
    std::fs::write(Path::new(&mp).join("small"), vec![1u8; 100 << 10]).unwrap();
    let e = std::fs::write(Path::new(&mp).join("big"), vec![1u8; 2 << 20]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    for id in ["A", "A", "B"] {
        p.ok("/VolumeDriver.Unmount", json!({"Name": "m", "ID": id}));
    }
    p.ok("/VolumeDriver.Remove", json!({"Name": "m"}));
    p.ok("/VolumeDriver.Remove", json!({"Name": "m"}));
    assert!(!Path::new(&mp).exists());
    assert!(
        p.err("/VolumeDriver.Get", json!({"Name": "m"}))
            .contains("no volume m")
    );

    // A failing mount leaves the other volumes' counts as they were.
    p.ok("/VolumeDriver.Mount", json!({"Name": "d", "ID": "C"}));
    assert!(
        p.err("/VolumeDriver.Mount", json!({"Name": "broken", "ID": "C"}))
            .contains("failed")
    );
    let g = p.ok("/VolumeDriver.Get", json!({"Name": "broken"}));
    assert_eq!(g["Volume"]["Status"]["mounts"], 0);

    // Snapshot on the last unmount, and a clone from it.
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "ck", "Opts": {"tier": "disk", "size": "16m", "snapshot": "on-unmount"}}),
    );
    let ck = p.ok("/VolumeDriver.Mount", json!({"Name": "ck", "ID": "E"}))["Mountpoint"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::create_dir_all(Path::new(&ck).join("run17")).unwrap();
    std::fs::write(Path::new(&ck).join("run17/psi.bin"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(Path::new(&ck).join("notes.txt"), b"after run 17").unwrap();
    p.ok("/VolumeDriver.Unmount", json!({"Name": "ck", "ID": "E"}));
    let repo = Repository::open(dir.path().join("repo").to_str().unwrap()).unwrap();
    assert_eq!(
        repo.reader("main", "volumes/ck/notes.txt")
            .unwrap()
            .read_all()
            .unwrap(),
        b"after run 17"
    );
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "clone1", "Opts": {"tier": "memory", "size": "8m", "from": "main:volumes/ck"}}),
    );
    let c = p.ok("/VolumeDriver.Path", json!({"Name": "clone1"}))["Mountpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read(Path::new(&c).join("run17/psi.bin")).unwrap(),
        vec![7u8; 3 << 20]
    );
    // Without size=, a clone is sized from the snapshot: its bytes plus at least 64 MiB.
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "clone2", "Opts": {"tier": "memory", "from": "main:volumes/ck"}}),
    );
    let g = p.ok("/VolumeDriver.Get", json!({"Name": "clone2"}));
    let snapshot = (3u64 << 20) + b"after run 17".len() as u64;
    assert_eq!(
        g["Volume"]["Status"]["size"],
        (snapshot + (64 << 20)).div_ceil(1 << 20) * (1 << 20)
    );
    let c2 = p.ok("/VolumeDriver.Path", json!({"Name": "clone2"}))["Mountpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read(Path::new(&c2).join("notes.txt")).unwrap(),
        b"after run 17"
    );
    p.ok("/VolumeDriver.Remove", json!({"Name": "clone2"}));

    // A second snapshot of unchanged files writes no new chunks.
    let chunks = repo.stats().unwrap().chunk_objects;
    call(
        &p.socket,
        "/QStore.Snapshot",
        &json!({"Name": "ck", "Message": "again"}),
    )
    .unwrap();
    assert_eq!(
        Repository::open(repo.address())
            .unwrap()
            .stats()
            .unwrap()
            .chunk_objects,
        chunks
    );

    // kill -9: the table, the mounts and the files survive a restart.
    let listed = names(&p);
    let d_path = p.ok("/VolumeDriver.Path", json!({"Name": "d"}))["Mountpoint"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(Path::new(&d_path).join("kept"), b"yes").unwrap();
    p.kill9();
    let p = Plugin::start(dir.path(), &[]);
    assert_eq!(names(&p), listed);
    assert_eq!(
        p.ok("/VolumeDriver.Get", json!({"Name": "d"}))["Volume"]["Status"]["mounts"],
        1
    );
    assert_eq!(
        std::fs::read(Path::new(&d_path).join("kept")).unwrap(),
        b"yes"
    );

    // Clean up every mount.
    p.ok("/VolumeDriver.Unmount", json!({"Name": "d", "ID": "C"}));
    for n in names(&p) {
        p.ok("/VolumeDriver.Remove", json!({"Name": n}));
    }
    assert!(names(&p).is_empty());
}

/// A stand-in for Docker's API that runs no containers (fault injection: Docker restarted and
/// will never send the Unmounts of the mounts it made before).
fn fake_docker(path: &Path) {
    let l = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            // Read the whole request head before answering.
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match std::io::Read::read(&mut s, &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = std::io::Write::write_all(
                &mut s,
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
            );
        }
    });
}

#[test]
fn mounts_docker_forgot_are_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker.sock");
    fake_docker(&docker);
    let p = Plugin::start_with(dir.path(), &[], &dir.path().join("absent.sock"), "30s");
    p.ok(
        "/VolumeDriver.Create",
        json!({"Name": "w", "Opts": {"tier": "memory", "size": "1m", "snapshot": "on-unmount"}}),
    );
    let mp = p.ok("/VolumeDriver.Mount", json!({"Name": "w", "ID": "lost"}))["Mountpoint"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(Path::new(&mp).join("result"), b"42").unwrap();
    // Docker unreachable: nothing is reconciled.
    p.kill9();
    let p = Plugin::start_with(dir.path(), &[], &dir.path().join("absent.sock"), "0.1s");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        p.ok("/VolumeDriver.Get", json!({"Name": "w"}))["Volume"]["Status"]["mounts"],
        1
    );
    p.kill9();
    // Docker runs no container using it: the mount is dropped at start and the snapshot taken.
    let p = Plugin::start_with(dir.path(), &[], &docker, "0.1s");
    assert_eq!(
        p.ok("/VolumeDriver.Get", json!({"Name": "w"}))["Volume"]["Status"]["mounts"],
        0
    );
    let repo = Repository::open(dir.path().join("repo").to_str().unwrap()).unwrap();
    assert_eq!(
        repo.reader("main", "volumes/w/result")
            .unwrap()
            .read_all()
            .unwrap(),
        b"42"
    );
    // A mount made later is dropped by the periodic pass (after two observations).
    p.ok("/VolumeDriver.Mount", json!({"Name": "w", "ID": "again"}));
    let mut n = 1;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        n = p.ok("/VolumeDriver.Get", json!({"Name": "w"}))["Volume"]["Status"]["mounts"]
            .as_u64()
            .unwrap();
        if n == 0 {
            break;
        }
    }
    assert_eq!(n, 0);
    p.ok("/VolumeDriver.Remove", json!({"Name": "w"}));
}
