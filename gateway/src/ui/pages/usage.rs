//! STUB until its page lands.
use std::sync::Arc;
pub(super) fn routes() -> axum::Router<Arc<crate::http::AppState>> {
    axum::Router::new()
}
