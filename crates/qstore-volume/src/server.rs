//! The plugin's HTTP server on a unix socket: `POST /Plugin.Activate` and
//! `POST /VolumeDriver.*`, JSON in and out, errors as HTTP 200 with a non-empty `Err` (which
//! Docker shows to the user). Calls are served one at a time against the shared [`Driver`].

use crate::driver::Driver;
use crate::protocol::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::post;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<Driver>>;

fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, String> {
    // Docker sends `{}` or nothing for the calls without arguments.
    let b: &[u8] = if b.is_empty() { b"{}" } else { b };
    serde_json::from_slice(b).map_err(|e| format!("bad request body: {e}"))
}

fn err_json(r: Result<(), String>) -> Json<ErrResponse> {
    Json(ErrResponse {
        err: r.err().unwrap_or_default(),
    })
}

/// `{"Mountpoint": ..., "Err": ...}` of Mount and Path.
fn mountpoint(r: Result<String, String>) -> Json<MountResponse> {
    Json(match r {
        Ok(m) => MountResponse {
            mountpoint: m,
            err: String::new(),
        },
        Err(e) => MountResponse {
            mountpoint: String::new(),
            err: e,
        },
    })
}

fn with<R>(s: &Shared, f: impl FnOnce(&mut Driver) -> R) -> R {
    let mut d = s.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut d)
}

async fn activate() -> impl IntoResponse {
    Json(serde_json::json!({"Implements": ["VolumeDriver"]}))
}

async fn capabilities() -> impl IntoResponse {
    Json(serde_json::json!({"Capabilities": {"Scope": "local"}}))
}

async fn create(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    err_json(
        body::<CreateRequest>(&b)
            .and_then(|r| with(&s, |d| d.create(&r.name, &r.opts.unwrap_or_default()))),
    )
}

async fn remove(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    err_json(body::<NameRequest>(&b).and_then(|r| with(&s, |d| d.remove(&r.name))))
}

async fn mount(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    mountpoint(body::<MountRequest>(&b).and_then(|r| with(&s, |d| d.mount(&r.name, &r.id))))
}

async fn unmount(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    err_json(body::<MountRequest>(&b).and_then(|r| with(&s, |d| d.unmount(&r.name, &r.id))))
}

async fn path(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    mountpoint(body::<NameRequest>(&b).and_then(|r| with(&s, |d| d.path(&r.name))))
}

async fn get(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    match body::<NameRequest>(&b).and_then(|r| with(&s, |d| d.get(&r.name))) {
        Ok(v) => Json(GetResponse {
            volume: Some(v),
            err: String::new(),
        }),
        Err(e) => Json(GetResponse {
            volume: None,
            err: e,
        }),
    }
}

#[derive(serde::Deserialize)]
struct SnapshotRequest {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Message", default)]
    message: String,
}

/// qstore's own call (not Docker's): commit a volume's files now.
async fn snapshot(State(s): State<Shared>, b: Bytes) -> impl IntoResponse {
    let r = body::<SnapshotRequest>(&b).and_then(|r| {
        let m = if r.message.is_empty() {
            "snapshot".to_string()
        } else {
            r.message
        };
        with(&s, |d| d.snapshot(&r.name, &m))
    });
    match r {
        Ok(c) => Json(serde_json::json!({"Commit": c, "Err": ""})),
        Err(e) => Json(serde_json::json!({"Commit": "", "Err": e})),
    }
}

async fn list(State(s): State<Shared>) -> impl IntoResponse {
    Json(ListResponse {
        volumes: with(&s, |d| d.list()),
        err: String::new(),
    })
}

/// The plugin's routes over a shared driver.
pub fn router(s: Shared) -> Router {
    Router::new()
        .route("/Plugin.Activate", post(activate))
        .route("/VolumeDriver.Capabilities", post(capabilities))
        .route("/VolumeDriver.Create", post(create))
        .route("/VolumeDriver.Remove", post(remove))
        .route("/VolumeDriver.Mount", post(mount))
        .route("/VolumeDriver.Unmount", post(unmount))
        .route("/VolumeDriver.Path", post(path))
        .route("/VolumeDriver.Get", post(get))
        .route("/VolumeDriver.List", post(list))
        .route("/QStore.Snapshot", post(snapshot))
        .with_state(s)
}

/// Serve on the unix socket `socket` until the process ends. A stale socket file left by a
/// killed plugin is replaced. Mount counts are reconciled with the containers Docker runs
/// (on `docker_socket`) at start and every `every`.
pub fn serve(
    mut driver: Driver,
    socket: &std::path::Path,
    docker_socket: &std::path::Path,
    every: std::time::Duration,
) -> Result<(), String> {
    driver.reconcile(docker_socket, true);
    let s: Shared = Arc::new(Mutex::new(driver));
    {
        let s = s.clone();
        let docker = docker_socket.to_path_buf();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(every);
                with(&s, |d| d.reconcile(&docker, false));
            }
        });
    }
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _ = std::fs::remove_file(socket);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let listener = tokio::net::UnixListener::bind(socket)
            .map_err(|e| format!("{}: {e}", socket.display()))?;
        axum::serve(listener, router(s))
            .await
            .map_err(|e| e.to_string())
    })
}
