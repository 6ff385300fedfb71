//! The eight workloads: what each does, with how many tasks, and one
//! operation of it on any contender.

use crate::contender::Contender;
use crate::scratch::Fixture;
use anyhow::Result;
use fastrand::Rng;

/// A workload of the issue, W1 to W8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// W1: a user by id, one task.
    UserByIdSerial,
    /// W2: a user by id, 16 tasks.
    UserById,
    /// W3: a user by email (ignoring case), 16 tasks.
    UserByEmail,
    /// W4: append one message returning it, 16 tasks.
    AppendMessage,
    /// W5: append a batch of 1,000 messages in one call, one task.
    AppendBatch,
    /// W6: the newest 50 messages of a conversation, 16 tasks.
    NewestMessages,
    /// W7: a conversation with its first message, one transaction, 16 tasks.
    CreateConversation,
    /// W8: pool checkout and return, no query, 16 tasks.
    Checkout,
}

/// The number of concurrent tasks of the concurrent workloads (the pool size).
const CONCURRENT: usize = crate::contender::POOL_SIZE as usize;

/// Messages per call of W5.
pub const BATCH: usize = 1_000;

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 8] = [
        Workload::UserByIdSerial,
        Workload::UserById,
        Workload::UserByEmail,
        Workload::AppendMessage,
        Workload::AppendBatch,
        Workload::NewestMessages,
        Workload::CreateConversation,
        Workload::Checkout,
    ];

    /// `W1` to `W8`.
    pub fn id(self) -> &'static str {
        match self {
            Workload::UserByIdSerial => "W1",
            Workload::UserById => "W2",
            Workload::UserByEmail => "W3",
            Workload::AppendMessage => "W4",
            Workload::AppendBatch => "W5",
            Workload::NewestMessages => "W6",
            Workload::CreateConversation => "W7",
            Workload::Checkout => "W8",
        }
    }

    /// What it does, for the report.
    pub fn title(self) -> &'static str {
        match self {
            Workload::UserByIdSerial | Workload::UserById => "user by id",
            Workload::UserByEmail => "user by email, ignoring case",
            Workload::AppendMessage => "append 1 message, returning it",
            Workload::AppendBatch => "append 1,000 messages in one call",
            Workload::NewestMessages => "newest 50 messages (owner checked)",
            Workload::CreateConversation => "conversation + first message, 1 tx",
            Workload::Checkout => "pool checkout + return, no query",
        }
    }

    /// How many tasks run it at once.
    pub fn tasks(self) -> usize {
        match self {
            Workload::UserByIdSerial | Workload::AppendBatch => 1,
            _ => CONCURRENT,
        }
    }

    /// Rows per operation when the report counts rows (W5), else 1.
    pub fn rows_per_op(self) -> f64 {
        match self {
            Workload::AppendBatch => BATCH as f64,
            _ => 1.0,
        }
    }

    /// The unit the report gives throughput in.
    pub fn unit(self) -> &'static str {
        match self {
            Workload::AppendBatch => "rows/s",
            _ => "ops/s",
        }
    }

    /// Reads `W3`, `w3` or `3`.
    pub fn parse(text: &str) -> Option<Workload> {
        let text = text.trim();
        let number = text
            .strip_prefix('W')
            .or_else(|| text.strip_prefix('w'))
            .unwrap_or(text);
        Workload::ALL.into_iter().find(|w| &w.id()[1..] == number)
    }

    /// One operation on `contender`, its input drawn from `fixture` by
    /// `rng`. Returns the rows the contender reports.
    pub async fn run_once<C: Contender>(
        self,
        contender: &C,
        fixture: &Fixture,
        rng: &mut Rng,
    ) -> Result<usize> {
        match self {
            Workload::UserByIdSerial | Workload::UserById => {
                contender.user_by_id(fixture.user(rng).id).await
            }
            Workload::UserByEmail => {
                contender
                    .user_by_email(&fixture.user(rng).typed_email)
                    .await
            }
            Workload::AppendMessage => {
                contender
                    .append_message(fixture.sink(rng), &fixture.message)
                    .await
            }
            Workload::AppendBatch => {
                contender
                    .append_messages(fixture.sink(rng), &fixture.batch)
                    .await
            }
            Workload::NewestMessages => contender.newest_messages(fixture.history(rng)).await,
            Workload::CreateConversation => {
                contender
                    .create_conversation(fixture.user(rng).id, &fixture.message)
                    .await
            }
            Workload::Checkout => contender.checkout().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_by_number() {
        assert_eq!(Workload::parse("W3"), Some(Workload::UserByEmail));
        assert_eq!(Workload::parse("8"), Some(Workload::Checkout));
        assert_eq!(Workload::parse("w9"), None);
        for w in Workload::ALL {
            assert_eq!(Workload::parse(w.id()), Some(w));
        }
    }
}
