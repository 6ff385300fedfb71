//! The scratch database: recreated on every run, migrated by the crate's own
//! `migrate::run_pending`, seeded with set-based SQL, and read back into the
//! [`Fixture`] the workloads draw their inputs from.

use crate::contender::store::Store;
use crate::contender::{Draft, Owned};
use crate::target::Target;
use crate::workload::BATCH;
use anyhow::{ensure, Context, Result};
use fastrand::Rng;
use uuid::Uuid;

/// The database the contenders work on.
pub const DATABASE: &str = "pronghorn_bench";

/// Users seeded.
pub const USERS: usize = 10_000;
/// Conversations with history (read by W6).
pub const CONVERSATIONS: usize = 1_000;
/// Messages per conversation with history.
pub const MESSAGES_PER_CONVERSATION: usize = 100;
/// Conversations without history that W4 and W5 append to, so that the
/// conversations W6 reads keep their size however long the run.
pub const SINKS: usize = 1_000;

/// The seed: users, then conversations (the first [`CONVERSATIONS`] with
/// history, then [`SINKS`] empty ones), then the history. Contents are 200
/// bytes; times are spread so that the history has a defined order.
const SEED: &str = r#"
INSERT INTO users (email, password_hash, display_name, language_preference, oauth_provider,
                   email_verified, role, created_at, updated_at, last_login, avatar_url,
                   additional_roles)
SELECT format('user%s@bench.example', g),
       '$argon2id$v=19$m=19456,t=2,p=1$' || left(md5(g::text), 22) || '$' || md5((-g)::text),
       format('Bench User %s', g), 'en', 'local', g % 2 = 0,
       CASE WHEN g % 100 = 0 THEN 'admin' ELSE 'user' END,
       now() - make_interval(mins => g), now() - make_interval(mins => g),
       now() - make_interval(hours => g % 48),
       format('https://avatars.bench.example/%s.png', g), '["beta"]'::jsonb
FROM generate_series(1, $users) AS g;

INSERT INTO conversations (user_id, title, provider, model, created_at, updated_at)
SELECT u.id,
       format(CASE WHEN c <= $conversations THEN 'history %s' ELSE 'sink %s' END, c),
       'openai', 'gpt-4o', now() - interval '1 day', now() - interval '1 day'
FROM generate_series(1, $conversations + $sinks) AS c
JOIN (SELECT id, row_number() OVER (ORDER BY email) AS n FROM users) AS u
  ON u.n = (c * 7) % $users + 1;

INSERT INTO messages (conversation_id, role, content, tokens_used, created_at)
SELECT c.id, CASE WHEN m % 2 = 0 THEN 'assistant' ELSE 'user' END,
       left(repeat(md5(c.id::text || m), 7), 200), 20 + m,
       c.created_at + make_interval(secs => m)
FROM conversations AS c CROSS JOIN generate_series(1, $messages) AS m
WHERE c.title LIKE 'history %';
"#;

/// A seeded user.
#[derive(Debug, Clone)]
pub struct SeededUser {
    /// Its id.
    pub id: Uuid,
    /// Its email as a user might type it (other case), so that every
    /// contender normalises it as the store does.
    pub typed_email: String,
}

/// What the workloads draw their inputs from.
#[derive(Debug)]
pub struct Fixture {
    users: Vec<SeededUser>,
    histories: Vec<Owned>,
    sinks: Vec<Owned>,
    /// The message W4 and W7 append.
    pub message: Draft,
    /// The batch W5 appends.
    pub batch: Vec<Draft>,
}

impl Fixture {
    /// A random seeded user.
    pub fn user(&self, rng: &mut Rng) -> &SeededUser {
        &self.users[rng.usize(..self.users.len())]
    }

    /// A random conversation with history.
    pub fn history(&self, rng: &mut Rng) -> Owned {
        self.histories[rng.usize(..self.histories.len())]
    }

    /// A random conversation to append to.
    pub fn sink(&self, rng: &mut Rng) -> Owned {
        self.sinks[rng.usize(..self.sinks.len())]
    }
}

/// A 200-byte message text, different for each `n`.
fn content(n: usize) -> String {
    let mut text = format!("Message {n}: ");
    while text.len() < 200 {
        text.push_str("the quick brown fox jumps over the lazy dog ");
    }
    text.truncate(200);
    text
}

fn draft(n: usize) -> Draft {
    Draft {
        role: if n % 2 == 0 { "user" } else { "assistant" }.to_owned(),
        content: content(n),
        tokens_used: Some(42),
    }
}

/// Drops and recreates [`DATABASE`], migrates it through a [`Store`], seeds
/// it and returns the fixture.
///
/// Fails when the server refuses any step.
pub async fn prepare(admin: &Target) -> Result<Fixture> {
    let target = admin.database(DATABASE);
    recreate(admin, DATABASE).await?;
    let store = Store::connect(&target, 1).await?;
    pronghorn_db::migrate::run_pending(store.inner())
        .await
        .context("migrating the scratch database")?;
    drop(store);

    let client = target.client().await?;
    let seed = SEED
        .replace("$users", &USERS.to_string())
        .replace("$conversations", &CONVERSATIONS.to_string())
        .replace("$sinks", &SINKS.to_string())
        .replace("$messages", &MESSAGES_PER_CONVERSATION.to_string());
    client.batch_execute(&seed).await.context("seeding")?;
    client.batch_execute("VACUUM ANALYZE").await?;

    let users = client
        .query("SELECT id, email FROM users ORDER BY email", &[])
        .await?
        .iter()
        .map(|row| {
            let email: String = row.get(1);
            SeededUser {
                id: row.get(0),
                typed_email: format!(
                    "  {}",
                    email.replacen("user", "User", 1).replace("bench", "Bench")
                ),
            }
        })
        .collect::<Vec<_>>();
    let conversations = |pattern: &'static str| {
        let client = &client;
        async move {
            let rows = client
                .query(
                    "SELECT id, user_id FROM conversations WHERE title LIKE $1 ORDER BY id",
                    &[&pattern],
                )
                .await?;
            Ok::<_, anyhow::Error>(
                rows.iter()
                    .map(|row| Owned {
                        conversation: row.get(0),
                        owner: row.get(1),
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    let histories = conversations("history %").await?;
    let sinks = conversations("sink %").await?;
    ensure!(
        users.len() == USERS && histories.len() == CONVERSATIONS && sinks.len() == SINKS,
        "the seed made {} users, {} conversations with history and {} sinks",
        users.len(),
        histories.len(),
        sinks.len()
    );
    Ok(Fixture {
        users,
        histories,
        sinks,
        message: draft(0),
        batch: (1..=BATCH).map(draft).collect(),
    })
}

/// Drops `dbname` (ending its sessions) and creates it empty.
pub async fn recreate(admin: &Target, dbname: &str) -> Result<()> {
    let client = admin.client().await?;
    // Two calls: neither statement may run inside a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS \"{dbname}\" WITH (FORCE)"),
        format!("CREATE DATABASE \"{dbname}\""),
    ] {
        client
            .batch_execute(&statement)
            .await
            .with_context(|| format!("recreating database {dbname}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_200_bytes_and_differ() {
        assert_eq!(content(7).len(), 200);
        assert_ne!(content(7), content(8));
    }
}
