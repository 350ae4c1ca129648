//! Processor accounts and the merchant's mode: adding an account seals its credentials under
//! the master key; going live requires a method a live account can really serve. The CLI and
//! the console both call these, so the rules are the same from a shell and from a browser.

use std::sync::Arc;

use crate::connectors::registry::{Registry, StoredCredentials, Unusable};
use crate::db::merchants::{self, MerchantRow};
use crate::db::{processors, Db};
use crate::domain::processor::{AccountStatus, Processor, ProcessorAccount};
use crate::domain::{Method, Mode};
use crate::secrets::{fingerprint, SealError};

/// Why a processor or mode change was refused. Messages are for staff and operators; none
/// carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("no merchant {0}")]
    UnknownMerchant(String),
    #[error("no active processor account {0} for this merchant")]
    UnknownAccount(String),
    #[error("choose at least one method for the account")]
    NoMethods,
    #[error("{processor} does not offer {method}")]
    MethodNotOffered {
        processor: &'static str,
        method: &'static str,
    },
    #[error("the secret key is required")]
    MissingSecret,
    #[error("Stripe card payments need the publishable key (pk_…): Stripe.js loads with it")]
    MissingPublishableKey,
    #[error("a Stripe {0} account takes {0} keys: sk_{0}_… or rk_{0}_…, and pk_{0}_…")]
    StripeKeyMode(&'static str),
    #[error("cannot store credentials: {0}")]
    Seal(#[from] SealError),
    #[error(
        "cannot switch to live: no enabled method has a live connector. Add a live processor \
         account serving one of the merchant's methods ({0})"
    )]
    NoLiveMethod(String),
    #[error(
        "cannot retire the last live account of a live merchant: switch the merchant to test \
         mode first (or add another live account)"
    )]
    LastLiveAccount,
    #[error(transparent)]
    Db(#[from] crate::db::Error),
}

/// A new account as entered by staff.
pub struct AccountInput {
    pub processor: Processor,
    pub mode: Mode,
    pub methods: Vec<Method>,
    pub secret_key: String,
    pub publishable_key: Option<String>,
    pub webhook_secret: Option<String>,
}

/// One account with, for each of its methods, whether this server can use it now.
pub struct AccountView {
    pub account: ProcessorAccount,
    pub methods: Vec<(Method, Option<Unusable>)>,
}

/// Adds an account: validates it, seals the secrets and stores them. Nothing is stored when
/// any check fails, and never anything in clear.
pub async fn add(
    db: &Db,
    registry: &Registry,
    merchant_id: &str,
    input: AccountInput,
    now: i64,
) -> Result<ProcessorAccount, ProcessorError> {
    merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| ProcessorError::UnknownMerchant(merchant_id.to_owned()))?;
    if input.methods.is_empty() {
        return Err(ProcessorError::NoMethods);
    }
    if let Some(m) = input.methods.iter().find(|m| !input.processor.offers(**m)) {
        return Err(ProcessorError::MethodNotOffered {
            processor: input.processor.name(),
            method: m.code(),
        });
    }
    let secret_key = input.secret_key.trim();
    if secret_key.is_empty() {
        return Err(ProcessorError::MissingSecret);
    }
    let has_publishable = input
        .publishable_key
        .as_deref()
        .is_some_and(|k| !k.trim().is_empty());
    if input.processor == Processor::Stripe
        && input.methods.contains(&Method::Card)
        && !has_publishable
    {
        return Err(ProcessorError::MissingPublishableKey);
    }
    if input.processor == Processor::Stripe {
        // Test keys on a live account would take no money; live keys on a test account would.
        let m = input.mode.as_str();
        let secret_ok = [format!("sk_{m}_"), format!("rk_{m}_")]
            .iter()
            .any(|p| secret_key.starts_with(p.as_str()));
        let public_ok = input.publishable_key.as_deref().is_none_or(|k| {
            let k = k.trim();
            k.is_empty() || k.starts_with(&format!("pk_{m}_"))
        });
        if !secret_ok || !public_ok {
            return Err(ProcessorError::StripeKeyMode(m));
        }
    }
    let keys = registry.keys();
    if !keys.has_current() {
        return Err(SealError::NoMasterKey.into());
    }
    let id = processors::new_id();
    let creds = serde_json::to_string(&StoredCredentials {
        secret_key: secret_key.to_owned(),
        publishable_key: input
            .publishable_key
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty()),
    })
    .map_err(|_| SealError::Corrupt)?;
    let sealed = keys.seal(&creds, &ProcessorAccount::seal_context(&id, "credentials"))?;
    let hook = input
        .webhook_secret
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
        .map(|w| keys.seal(&w, &ProcessorAccount::seal_context(&id, "webhook_secret")))
        .transpose()?;
    let fp = fingerprint(secret_key);
    let mut tx = db.begin().await?;
    processors::insert(
        &mut tx,
        &processors::NewAccount {
            id: &id,
            merchant_id,
            processor: input.processor,
            mode: input.mode,
            methods: &input.methods,
            credentials: &sealed,
            webhook_secret: hook.as_deref(),
            fingerprint: &fp,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    processors::get(db, &id)
        .await?
        .ok_or_else(|| ProcessorError::UnknownAccount(id))
}

/// The merchant's accounts, each method marked usable or not (and why).
pub async fn list(
    db: &Db,
    registry: &Registry,
    merchant_id: &str,
) -> Result<Vec<AccountView>, ProcessorError> {
    Ok(processors::for_merchant(db, merchant_id)
        .await?
        .into_iter()
        .map(|a| AccountView {
            methods: a
                .methods
                .iter()
                .map(|m| (*m, registry.unusable(&a, *m)))
                .collect(),
            account: a,
        })
        .collect())
}

/// The methods a merchant would offer in `mode`: enabled ∩ backed by a connector.
pub async fn payable_methods(
    db: &Db,
    registry: &Registry,
    m: &MerchantRow,
    mode: Mode,
) -> Result<Vec<Method>, ProcessorError> {
    let accounts = processors::for_merchant(db, &m.id).await?;
    let backed = registry.live_methods(mode, &accounts);
    Ok(m.methods()
        .into_iter()
        .filter(|x| backed.contains(x))
        .collect())
}

/// Retires an account. A live merchant keeps at least one live method: retiring the account
/// that backs its last one is refused (switch to test first).
pub async fn retire(
    db: &Db,
    registry: &Registry,
    merchant_id: &str,
    account_id: &str,
    now: i64,
) -> Result<(), ProcessorError> {
    let m = merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| ProcessorError::UnknownMerchant(merchant_id.to_owned()))?;
    let accounts = processors::for_merchant(db, merchant_id).await?;
    if !accounts
        .iter()
        .any(|a| a.id == account_id && a.status == AccountStatus::Active)
    {
        return Err(ProcessorError::UnknownAccount(account_id.to_owned()));
    }
    if m.mode() == Mode::Live {
        let rest: Vec<ProcessorAccount> = accounts
            .into_iter()
            .filter(|a| a.id != account_id)
            .collect();
        let left = registry.live_methods(Mode::Live, &rest);
        if !m.methods().iter().any(|x| left.contains(x)) {
            return Err(ProcessorError::LastLiveAccount);
        }
    }
    let mut tx = db.begin().await?;
    if !processors::retire(&mut tx, merchant_id, account_id, now).await? {
        return Err(ProcessorError::UnknownAccount(account_id.to_owned()));
    }
    tx.commit().await?;
    Ok(())
}

/// Switches a merchant's mode. To live only when at least one enabled method has a live
/// connector; returns the methods the merchant offers in the new mode.
pub async fn set_mode(
    db: &Db,
    registry: &Arc<Registry>,
    merchant_id: &str,
    mode: Mode,
) -> Result<Vec<Method>, ProcessorError> {
    let m = merchants::get(db, merchant_id)
        .await?
        .ok_or_else(|| ProcessorError::UnknownMerchant(merchant_id.to_owned()))?;
    let payable = payable_methods(db, registry, &m, mode).await?;
    if mode == Mode::Live && payable.is_empty() {
        let accounts = list(db, registry, merchant_id).await?;
        let enabled = m.methods();
        let enabled = &enabled;
        let why = if accounts.iter().all(|a| a.account.mode != Mode::Live) {
            "the merchant has no live processor account".to_owned()
        } else {
            accounts
                .iter()
                .filter(|a| {
                    a.account.mode == Mode::Live && a.account.status == AccountStatus::Active
                })
                .flat_map(|a| {
                    a.methods.iter().map(move |(x, why)| {
                        let state = match why {
                            None if !enabled.contains(x) => {
                                "not enabled for the merchant".to_owned()
                            }
                            None => "usable".to_owned(),
                            Some(Unusable::NoDriver) => format!(
                                "this server has no {} connector for it yet",
                                a.account.processor.name()
                            ),
                            Some(Unusable::Sealed(e)) => e.clone(),
                        };
                        format!("{} {}: {state}", a.account.id, x.code())
                    })
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(ProcessorError::NoLiveMethod(why));
    }
    merchants::set_mode(db, merchant_id, mode).await?;
    Ok(payable)
}
