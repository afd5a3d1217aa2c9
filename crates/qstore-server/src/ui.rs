//! The web view's page (`/ui/`, with `qstore serve --ui` or `qstore ui`): one HTML page,
//! one script and one style sheet, plain JavaScript and SVG written for qstore (no framework,
//! no build step), compiled into the binary. The page holds no data: it asks the API with
//! the token the user gives it (in an `Authorization` header, kept in the tab's
//! `sessionStorage`, never in a URL). Under `qstore ui` the page exchanges the one-time
//! login code from the URL's fragment at `POST /ui/session` for a session token held in the
//! server's memory ([`SessionTokens`](crate::tokens::SessionTokens)). Every asset is served
//! with a strict Content-Security-Policy (own scripts only, no inline code, no framing).

use crate::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE_CSS: &str = include_str!("../ui/style.css");

/// The Content-Security-Policy of every asset.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

pub async fn root() -> Redirect {
    Redirect::to("/ui/")
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string())
}

/// `POST /ui/session`: the one-time login code (as a bearer token) for a session token.
pub async fn session(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(sessions) = state.sessions.clone() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no_login_codes",
            "no login codes here: this server was not started by `qstore ui`",
        )
        .into_response();
    };
    let token = bearer(&headers).and_then(|code| sessions.exchange(&code));
    match token {
        Some(t) => axum::Json(json!({
            "token": t,
            "scope": sessions.scope().to_string(),
            "repositories": state.repos.keys().collect::<Vec<_>>(),
        }))
        .into_response(),
        None => {
            ApiError::unauthorised("the login code is wrong or was used already").into_response()
        }
    }
}

/// `GET /v1/repos`: the repositories the presented token opens, with its scope in each.
pub async fn repositories(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let presented = bearer(&headers);
    let mut out = Vec::new();
    let mut refusal = None;
    for served in state.repos.values() {
        match crate::grant_for(&state, served.clone(), presented.clone()).await {
            Ok(g) => out.push(json!({"name": served.name, "scope": g.scope.to_string()})),
            Err(e) => refusal = Some(e),
        }
    }
    match (out.is_empty(), refusal) {
        (true, Some(e)) => e.into_response(),
        _ => axum::Json(json!({"repositories": out})).into_response(),
    }
}
