//! Every secret column that is read back (so sealed under the master key rather than hashed),
//! listed and rewritten in one place for `keys rotate-master` and `keys status`.

use crate::db::Tx;
use crate::exec_tx;
use crate::on_tx;

/// A column holding a secret that must be read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretColumn {
    /// `signing_keys.secret` (HMAC key of order links).
    SigningKey,
    /// `merchants.webhook_secrets` (notification signing secrets).
    WebhookSecrets,
    /// `console_users.totp_secret`.
    TotpSecret,
    /// `console_invites.totp_secret` (the secret an enrolment link will enrol).
    InviteTotpSecret,
    /// `server_settings.value` of `secret` (session, CSRF and sandbox keys derive from it).
    ServerSecret,
    /// `processor_accounts.credentials`: always sealed.
    ProcessorCredentials,
    /// `processor_accounts.webhook_secret`: always sealed.
    ProcessorWebhookSecret,
    /// `refund_requests.account` (the shopper's bank account for a refund transfer).
    RefundAccount,
}

impl SecretColumn {
    /// The seal context of the value in row `id` (the same the writer used).
    pub fn context(self, id: &str) -> String {
        match self {
            SecretColumn::SigningKey => crate::db::merchants::signing_key_context(id),
            SecretColumn::WebhookSecrets => crate::db::merchants::webhook_context(id),
            SecretColumn::TotpSecret => format!("console_users:{id}:totp_secret"),
            SecretColumn::InviteTotpSecret => crate::db::console_invites::totp_context(id),
            SecretColumn::ServerSecret => SERVER_SECRET_CONTEXT.to_owned(),
            SecretColumn::ProcessorCredentials => {
                crate::domain::processor::ProcessorAccount::seal_context(id, "credentials")
            }
            SecretColumn::ProcessorWebhookSecret => {
                crate::domain::processor::ProcessorAccount::seal_context(id, "webhook_secret")
            }
            SecretColumn::RefundAccount => refund_account_context(id),
        }
    }

    fn update_sql(self) -> &'static str {
        match self {
            SecretColumn::SigningKey => "UPDATE signing_keys SET secret = $1 WHERE id = $2",
            SecretColumn::WebhookSecrets => {
                "UPDATE merchants SET webhook_secrets = $1 WHERE id = $2"
            }
            SecretColumn::TotpSecret => "UPDATE console_users SET totp_secret = $1 WHERE id = $2",
            SecretColumn::InviteTotpSecret => {
                "UPDATE console_invites SET totp_secret = $1 WHERE id = $2"
            }
            SecretColumn::ServerSecret => "UPDATE server_settings SET value = $1 WHERE name = $2",
            SecretColumn::ProcessorCredentials => {
                "UPDATE processor_accounts SET credentials = $1 WHERE id = $2"
            }
            SecretColumn::ProcessorWebhookSecret => {
                "UPDATE processor_accounts SET webhook_secret = $1 WHERE id = $2"
            }
            SecretColumn::RefundAccount => "UPDATE refund_requests SET account = $1 WHERE id = $2",
        }
    }
}

/// The seal context of a refund request's bank account.
pub fn refund_account_context(id: &str) -> String {
    format!("refund_requests:{id}:account")
}

/// The seal context of the server secret.
pub const SERVER_SECRET_CONTEXT: &str = "server_settings:secret";

/// One stored secret: where it is and its stored (sealed or clear) value.
#[derive(Debug)]
pub struct StoredSecret {
    pub column: SecretColumn,
    pub id: String,
    pub value: String,
}

/// Every stored secret, in the caller's transaction.
pub async fn all(tx: &mut Tx) -> Result<Vec<StoredSecret>, sqlx::Error> {
    let queries: [(SecretColumn, &str); 8] = [
        (SecretColumn::SigningKey, "SELECT id, secret FROM signing_keys ORDER BY id"),
        (
            SecretColumn::WebhookSecrets,
            "SELECT id, webhook_secrets FROM merchants ORDER BY id",
        ),
        (
            SecretColumn::TotpSecret,
            "SELECT id, totp_secret FROM console_users ORDER BY id",
        ),
        // Used and expired links too: their secrets are still secrets.
        (
            SecretColumn::InviteTotpSecret,
            "SELECT id, totp_secret FROM console_invites ORDER BY id",
        ),
        (
            SecretColumn::ServerSecret,
            "SELECT name, value FROM server_settings WHERE name = 'secret'",
        ),
        (
            SecretColumn::ProcessorCredentials,
            "SELECT id, credentials FROM processor_accounts ORDER BY id",
        ),
        (
            SecretColumn::ProcessorWebhookSecret,
            "SELECT id, webhook_secret FROM processor_accounts WHERE webhook_secret IS NOT NULL ORDER BY id",
        ),
        (
            SecretColumn::RefundAccount,
            "SELECT id, account FROM refund_requests WHERE account IS NOT NULL ORDER BY id",
        ),
    ];
    let mut out = Vec::new();
    for (column, sql) in queries {
        let rows: Vec<(String, String)> = on_tx!(tx, c => sqlx::query_as(sql).fetch_all(c).await)?;
        out.extend(
            rows.into_iter()
                .map(|(id, value)| StoredSecret { column, id, value }),
        );
    }
    Ok(out)
}

/// Replaces one stored secret's value.
pub async fn set(tx: &mut Tx, s: &StoredSecret, value: &str) -> Result<(), sqlx::Error> {
    exec_tx!(tx, c => sqlx::query(s.column.update_sql())
        .bind(value)
        .bind(&s.id)
        .execute(c)
        .await)?;
    Ok(())
}
