//! [`ApiError`]: every refusal of the server as an HTTP status and a JSON
//! [`qstore_cluster::wire::ErrorBody`], mapped from engine errors by category.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use qstore::{Error, ErrorCategory};
use qstore_cluster::wire::ErrorBody;

/// A refusal: status, machine-readable kind, message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn unauthorised(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorised", m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let m = e.to_string();
        let (status, kind) = match &e {
            Error::BlobNotFound(_) => (StatusCode::NOT_FOUND, "blob_not_found"),
            Error::RepositoryNotFound(_) => (StatusCode::NOT_FOUND, "repository_not_found"),
            Error::LeaseLost { .. } => (StatusCode::CONFLICT, "lease_lost"),
            Error::RefStoreMismatch { .. } => (StatusCode::CONFLICT, "ref_store_mismatch"),
            _ => match e.category() {
                ErrorCategory::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                ErrorCategory::Conflict => (StatusCode::CONFLICT, "conflict"),
                ErrorCategory::Corrupt => (StatusCode::INTERNAL_SERVER_ERROR, "corrupt"),
                ErrorCategory::InvalidInput => (StatusCode::BAD_REQUEST, "invalid"),
                ErrorCategory::QuotaExceeded => (StatusCode::INSUFFICIENT_STORAGE, "quota"),
                ErrorCategory::Unauthorised => (StatusCode::FORBIDDEN, "forbidden"),
                ErrorCategory::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                ErrorCategory::Io => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        };
        ApiError::new(status, kind, m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            kind: self.kind.into(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The query string of a request as `T`; a malformed one is refused with 400 and a JSON
/// body like every other refusal (axum's own `Query` answers in plain text).
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| ApiError::bad_request(format!("malformed query: {}", e.body_text())))
    }
}
