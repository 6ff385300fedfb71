//! [`DisabledStore`]: the store used when no database is configured.

use super::{HealthStore, ServerInfo};
use crate::error::{Error, Result};
use crate::pool::PoolStats;
use async_trait::async_trait;

/// Implements a store part for [`DisabledStore`] from its method
/// signatures: every method fails with [`Error::Disabled`], so that no
/// write looks stored and no read looks empty.
macro_rules! disabled_store {
    ($part:ident { $( fn $name:ident( $($arg:ty),* ) -> $ret:ty; )* }) => {
        #[async_trait::async_trait]
        impl $part for $crate::store::DisabledStore {
            $(
                async fn $name(&self $(, _: $arg)*) -> $ret {
                    Err($crate::error::Error::Disabled)
                }
            )*
        }
    };
}
pub(crate) use disabled_store;

/// The store used when no database is configured. Every data method fails
/// with [`Error::Disabled`], so that nothing looks stored that was not; the
/// health methods report "not configured".
#[derive(Debug, Clone, Default)]
pub struct DisabledStore {
    reason: String,
}

impl DisabledStore {
    /// A disabled store; `reason` says why (which variable is missing).
    pub fn new(reason: impl Into<String>) -> Self {
        DisabledStore {
            reason: reason.into(),
        }
    }

    /// Why the database is disabled.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[async_trait]
impl HealthStore for DisabledStore {
    fn is_configured(&self) -> bool {
        false
    }

    fn is_connected(&self) -> bool {
        false
    }

    fn target(&self) -> Option<String> {
        None
    }

    async fn server_info(&self) -> Result<ServerInfo> {
        Err(Error::Disabled)
    }

    async fn test_connection(&self) -> bool {
        false
    }

    async fn migrations(&self) -> Result<Vec<crate::migrate::MigrationState>> {
        Err(Error::Disabled)
    }

    fn replica_status(&self) -> Vec<super::replicas::ReplicaStatus> {
        Vec::new()
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }

    async fn close(&self) {}
}
