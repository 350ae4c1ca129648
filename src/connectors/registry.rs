//! The connector registry: the only place flows get a connector from. Keyed by method family
//! and mode: test mode has the sandbox (and any test-key processor account); live mode has only
//! processor accounts whose processor has a driver here. A live merchant therefore cannot
//! reach the sandbox by construction: no path through the registry hands it out.

use std::collections::HashMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::connectors::bank::{BankConnector, SandboxBankConnector};
use crate::connectors::card::{CardConnector, SandboxCardConnector};
use crate::connectors::carrier::{CarrierConnector, SandboxCarrierConnector};
use crate::connectors::client_card::ClientCardConnector;
pub use crate::connectors::driver::{Credentials, ProcessorDriver, StoredCredentials};
use crate::connectors::komoju::{KomojuApi, KomojuDriver};
use crate::connectors::konbini::{NumberConnector, SandboxNumberConnector};
use crate::connectors::wallet::{SandboxWalletConnector, WalletConnector};
use crate::connectors::webhook::{WebhookError, WebhookEvent};
use crate::domain::processor::{AccountStatus, ConnectorId, Family, Processor, ProcessorAccount};
use crate::domain::{Method, Mode};
use crate::secrets::Keyring;

/// The built-in sandbox connectors. Only the registry (for test mode) and the sandbox's own
/// bank/carrier pages see them.
pub struct Sandbox {
    pub card: Arc<SandboxCardConnector>,
    pub number: Arc<SandboxNumberConnector>,
    pub bank: Arc<SandboxBankConnector>,
    pub carrier: Arc<SandboxCarrierConnector>,
    pub wallet: Arc<SandboxWalletConnector>,
}

impl Sandbox {
    /// The sandbox's return-signing keys are derived from the server secret, so every
    /// instance sharing the database verifies what another signed.
    fn new(public_url: &str, server_secret: &[u8]) -> Sandbox {
        Sandbox {
            card: Arc::new(SandboxCardConnector::new()),
            number: Arc::new(SandboxNumberConnector::with_seed(server_secret)),
            bank: Arc::new(SandboxBankConnector::new(
                public_url,
                derived_secret(server_secret, "sandbox-bank"),
            )),
            carrier: Arc::new(SandboxCarrierConnector::new(
                public_url,
                derived_secret(server_secret, "sandbox-carrier"),
            )),
            wallet: Arc::new(SandboxWalletConnector::new(
                public_url,
                derived_secret(server_secret, "sandbox-wallet"),
            )),
        }
    }
}

/// The sandbox of a redirect institution among the registry's, for the sandbox pages: flows reach
/// it by institution type without naming a sandbox connector.
pub trait SandboxOf: crate::connectors::redirect::SandboxInstitution {
    fn of(s: &Sandbox) -> &crate::connectors::redirect::SandboxRedirect<Self>;
}

impl SandboxOf for crate::domain::bank::Bank {
    fn of(s: &Sandbox) -> &crate::connectors::redirect::SandboxRedirect<Self> {
        &s.bank
    }
}

impl SandboxOf for crate::domain::wallet::Wallet {
    fn of(s: &Sandbox) -> &crate::connectors::redirect::SandboxRedirect<Self> {
        &s.wallet
    }
}

/// A per-purpose key derived from the server secret: a leak of one purpose's key (e.g. in a
/// sandbox log) does not expose session or CSRF tokens.
pub fn derived_secret(secret: &[u8], purpose: &str) -> Vec<u8> {
    crate::signing::hmac_bytes(secret, format!("kakehashi|{purpose}").as_bytes()).to_vec()
}

/// Every connector this server has.
pub struct Registry {
    sandbox: Sandbox,
    drivers: HashMap<Processor, Arc<dyn ProcessorDriver>>,
    keys: Arc<Keyring>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("drivers", &self.drivers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why an account cannot back a method now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// This server has no driver for the processor (or the driver lacks the family).
    NoDriver,
    /// The credentials cannot be opened (no master key, or a key that is not configured).
    Sealed(String),
}

impl Registry {
    /// The standard registry: the sandbox for test mode and the processor drivers this build
    /// ships: KOMOJU (konbini and Pay-easy) against its public API host. Use
    /// [`Registry::configure`] to apply the server's settings (the KOMOJU API base); `startup`
    /// also registers the Stripe driver built from the server's Stripe settings.
    pub fn new(public_url: &str, server_secret: &[u8], keys: Arc<Keyring>) -> Registry {
        let mut r = Registry {
            sandbox: Sandbox::new(public_url, server_secret),
            drivers: HashMap::new(),
            keys,
        };
        match KomojuApi::new(crate::connectors::komoju::DEFAULT_API_BASE, false) {
            Ok(api) => r.register(Arc::new(KomojuDriver::new(api))),
            Err(e) => tracing::error!(error = %e, "KOMOJU connector unavailable"),
        }
        r
    }

    /// Applies the server settings the drivers need: the KOMOJU API base
    /// (`KAKEHASHI_KOMOJU_API_BASE`), which must be https on a public host unless loopback
    /// callbacks are allowed (local development and tests). A bad base stops start-up.
    pub fn configure(&mut self, config: &crate::config::Config) -> anyhow::Result<()> {
        let api = KomojuApi::new(&config.komoju_api_base, config.allow_loopback_callbacks)?;
        self.register(Arc::new(KomojuDriver::new(api)));
        Ok(())
    }

    /// Verifies an inbound webhook delivered for `account` with its processor's driver and the
    /// account's webhook secret, and reads the event.
    pub fn webhook(
        &self,
        account: &ProcessorAccount,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let driver = self.drivers.get(&account.processor).ok_or_else(|| {
            WebhookError::Unverifiable(format!("no {} driver", account.processor.name()))
        })?;
        let c = self
            .credentials(account)
            .map_err(|e| WebhookError::Unverifiable(e.to_string()))?;
        driver.webhook(&c, headers, body).unwrap_or_else(|| {
            Err(WebhookError::Unverifiable(format!(
                "the {} driver takes no webhooks",
                account.processor.name()
            )))
        })
    }

    /// Adds (or replaces) the driver of a processor.
    pub fn register(&mut self, driver: Arc<dyn ProcessorDriver>) {
        self.drivers.insert(driver.processor(), driver);
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    /// The shared keyring itself (the app state holds the same one).
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys.clone()
    }

    /// The sandbox's concrete connectors, for the sandbox bank and carrier pages (which play
    /// the bank's and carrier's own sites). Flows never use this.
    pub fn sandbox_pages(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Whether this server can pay `m` through `p`.
    pub fn supports(&self, p: Processor, m: Method) -> bool {
        self.drivers
            .get(&p)
            .is_some_and(|d| d.families().contains(&Family::of(m)))
    }

    /// Why `account` cannot back `m`, or `None` if it can.
    pub fn unusable(&self, account: &ProcessorAccount, m: Method) -> Option<Unusable> {
        if !self.supports(account.processor, m) {
            return Some(Unusable::NoDriver);
        }
        self.credentials(account)
            .err()
            .map(|e| Unusable::Sealed(e.to_string()))
    }

    fn credentials(&self, a: &ProcessorAccount) -> Result<Credentials, crate::secrets::SealError> {
        let creds = self.keys.open(
            &a.credentials,
            &ProcessorAccount::seal_context(&a.id, "credentials"),
        )?;
        let stored: StoredCredentials =
            serde_json::from_str(&creds).map_err(|_| crate::secrets::SealError::Corrupt)?;
        let webhook_secret = a
            .webhook_secret
            .as_deref()
            .map(|s| {
                self.keys
                    .open(s, &ProcessorAccount::seal_context(&a.id, "webhook_secret"))
            })
            .transpose()?;
        Ok(Credentials {
            account_id: a.id.clone(),
            mode: a.mode,
            secret_key: Zeroizing::new(stored.secret_key),
            publishable_key: stored.publishable_key,
            webhook_secret,
        })
    }

    /// Whether a merchant's processor accounts matter at all: without a driver none can be
    /// used, so callers skip reading them.
    pub fn uses_accounts(&self) -> bool {
        !self.drivers.is_empty()
    }

    /// The connectors of a merchant in `mode`, given its processor accounts.
    pub fn merchant(
        self: &Arc<Self>,
        mode: Mode,
        accounts: Vec<ProcessorAccount>,
    ) -> MerchantConnectors {
        MerchantConnectors {
            registry: self.clone(),
            mode,
            accounts: accounts.into(),
        }
    }

    /// The methods `accounts` can serve in `mode` (the sandbox serves every method in test).
    pub fn live_methods(&self, mode: Mode, accounts: &[ProcessorAccount]) -> Vec<Method> {
        Method::ALL
            .into_iter()
            .filter(|&m| {
                mode == Mode::Test
                    || accounts.iter().any(|a| {
                        a.status == AccountStatus::Active
                            && a.mode == mode
                            && a.methods.contains(&m)
                            && self.unusable(a, m).is_none()
                    })
            })
            .collect()
    }
}

/// A connector chosen for a payment, and the id to record on the payment.
pub struct Resolved<T: ?Sized> {
    pub id: ConnectorId,
    pub connector: Arc<T>,
}

/// One merchant's view of the registry in its current mode.
#[derive(Clone)]
pub struct MerchantConnectors {
    registry: Arc<Registry>,
    mode: Mode,
    accounts: Arc<[ProcessorAccount]>,
}

impl std::fmt::Debug for MerchantConnectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantConnectors")
            .field("mode", &self.mode)
            .field("methods", &self.methods())
            .finish()
    }
}

impl MerchantConnectors {
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every method a new payment can be made with.
    pub fn methods(&self) -> Vec<Method> {
        self.registry.live_methods(self.mode, &self.accounts)
    }

    /// Whether a new payment can be made with `m`.
    pub fn has(&self, m: Method) -> bool {
        self.methods().contains(&m)
    }

    /// For a new payment with `m`: the merchant's active account for this mode that serves it,
    /// else the sandbox in test mode, else nothing.
    fn for_new<T: ?Sized>(
        &self,
        m: Method,
        sandbox: Arc<T>,
        build: impl Fn(&dyn ProcessorDriver, &Credentials) -> Option<Arc<T>>,
    ) -> Option<Resolved<T>> {
        let r = &self.registry;
        for a in self.accounts.iter().filter(|a| {
            a.status == AccountStatus::Active && a.mode == self.mode && a.methods.contains(&m)
        }) {
            let Some(driver) = r.drivers.get(&a.processor) else {
                continue;
            };
            match r.credentials(a) {
                Ok(c) => {
                    if let Some(conn) = build(driver.as_ref(), &c) {
                        return Some(Resolved {
                            id: ConnectorId::Account(a.id.clone()),
                            connector: conn,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(account = %a.id, error = %e, "processor account unusable")
                }
            }
        }
        (self.mode == Mode::Test).then(|| Resolved {
            id: ConnectorId::Sandbox,
            connector: sandbox,
        })
    }

    /// For an existing payment: the connector that served it. The sandbox only while the
    /// merchant is in test mode; a processor account whatever its status (refunds of payments
    /// taken before it was retired still go through it).
    fn for_existing<T: ?Sized>(
        &self,
        id: &ConnectorId,
        sandbox: Arc<T>,
        build: impl Fn(&dyn ProcessorDriver, &Credentials) -> Option<Arc<T>>,
    ) -> Option<Arc<T>> {
        match id {
            ConnectorId::Sandbox => (self.mode == Mode::Test).then_some(sandbox),
            ConnectorId::Account(acct) => {
                let a = self.accounts.iter().find(|a| &a.id == acct)?;
                let driver = self.registry.drivers.get(&a.processor)?;
                match self.registry.credentials(a) {
                    Ok(c) => build(driver.as_ref(), &c),
                    Err(e) => {
                        tracing::error!(account = %a.id, error = %e, "processor account unusable");
                        None
                    }
                }
            }
        }
    }

    pub fn card(&self) -> Option<Resolved<dyn CardConnector>> {
        let sb: Arc<dyn CardConnector> = self.registry.sandbox.card.clone();
        self.for_new(Method::Card, sb, |d, c| d.card(c))
    }
    /// When the card connector a new payment would use ([`Self::card`]) collects the card in
    /// the shopper's browser: its browser-side part. `None` for the sandbox and for processors
    /// whose card form is ours.
    pub fn client_card(&self) -> Option<Resolved<dyn ClientCardConnector>> {
        let r = &self.registry;
        let a = self.accounts.iter().find(|a| {
            a.status == AccountStatus::Active
                && a.mode == self.mode
                && a.methods.contains(&Method::Card)
                && r.drivers
                    .get(&a.processor)
                    .is_some_and(|d| r.credentials(a).ok().is_some_and(|c| d.card(&c).is_some()))
        })?;
        let c = r.credentials(a).ok()?;
        let conn = r.drivers.get(&a.processor)?.client_card(&c)?;
        Some(Resolved {
            id: ConnectorId::Account(a.id.clone()),
            connector: conn,
        })
    }
    /// The browser-side card connector of an existing payment's account, if it has one.
    pub fn client_card_for(&self, id: &ConnectorId) -> Option<Arc<dyn ClientCardConnector>> {
        let ConnectorId::Account(acct) = id else {
            return None;
        };
        let a = self.accounts.iter().find(|a| &a.id == acct)?;
        let driver = self.registry.drivers.get(&a.processor)?;
        let c = self.registry.credentials(a).ok()?;
        driver.client_card(&c)
    }
    pub fn card_for(&self, id: &ConnectorId) -> Option<Arc<dyn CardConnector>> {
        let sb: Arc<dyn CardConnector> = self.registry.sandbox.card.clone();
        self.for_existing(id, sb, |d, c| d.card(c))
    }
    pub fn number(&self, m: Method) -> Option<Resolved<dyn NumberConnector>> {
        let sb: Arc<dyn NumberConnector> = self.registry.sandbox.number.clone();
        self.for_new(m, sb, |d, c| d.number(c))
    }
    pub fn number_for(&self, id: &ConnectorId) -> Option<Arc<dyn NumberConnector>> {
        let sb: Arc<dyn NumberConnector> = self.registry.sandbox.number.clone();
        self.for_existing(id, sb, |d, c| d.number(c))
    }
    pub fn bank(&self) -> Option<Resolved<dyn BankConnector>> {
        let sb: Arc<dyn BankConnector> = self.registry.sandbox.bank.clone();
        self.for_new(Method::Banknet, sb, |d, c| d.bank(c))
    }
    pub fn bank_for(&self, id: &ConnectorId) -> Option<Arc<dyn BankConnector>> {
        let sb: Arc<dyn BankConnector> = self.registry.sandbox.bank.clone();
        self.for_existing(id, sb, |d, c| d.bank(c))
    }
    pub fn carrier(&self, m: Method) -> Option<Resolved<dyn CarrierConnector>> {
        let sb: Arc<dyn CarrierConnector> = self.registry.sandbox.carrier.clone();
        self.for_new(m, sb, |d, c| d.carrier(c))
    }
    pub fn carrier_for(&self, id: &ConnectorId) -> Option<Arc<dyn CarrierConnector>> {
        let sb: Arc<dyn CarrierConnector> = self.registry.sandbox.carrier.clone();
        self.for_existing(id, sb, |d, c| d.carrier(c))
    }
    pub fn wallet(&self) -> Option<Resolved<dyn WalletConnector>> {
        let sb: Arc<dyn WalletConnector> = self.registry.sandbox.wallet.clone();
        self.for_new(Method::Wallet, sb, |d, c| d.wallet(c))
    }
    pub fn wallet_for(&self, id: &ConnectorId) -> Option<Arc<dyn WalletConnector>> {
        let sb: Arc<dyn WalletConnector> = self.registry.sandbox.wallet.clone();
        self.for_existing(id, sb, |d, c| d.wallet(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::bank::SANDBOX_REFUSES_LIVE;
    use crate::connectors::konbini::{IssueRequest, IssueTarget};
    use crate::domain::bank::Bank;
    use crate::domain::carrier::{BillingKind, Carrier};

    fn registry() -> Arc<Registry> {
        Arc::new(Registry::new(
            "http://127.0.0.1",
            b"server secret",
            Arc::new(Keyring::default()),
        ))
    }

    #[test]
    fn live_mode_never_resolves_to_the_sandbox() {
        let r = registry();
        let live = r.merchant(Mode::Live, Vec::new());
        assert!(live.methods().is_empty());
        assert!(live.card().is_none());
        assert!(live.number(Method::Konbini).is_none());
        assert!(live.bank().is_none());
        assert!(live.carrier(Method::Docomo).is_none());
        assert!(live.card_for(&ConnectorId::Sandbox).is_none());
        assert!(live.carrier_for(&ConnectorId::Sandbox).is_none());
        assert!(live.wallet().is_none());
        assert!(live.wallet_for(&ConnectorId::Sandbox).is_none());
        let test = r.merchant(Mode::Test, Vec::new());
        assert_eq!(test.methods(), Method::ALL.to_vec());
        assert_eq!(test.card().map(|c| c.id), Some(ConnectorId::Sandbox));
        // An account unknown to the merchant resolves to nothing, in any mode.
        assert!(test
            .card_for(&ConnectorId::Account("pa_x".into()))
            .is_none());
    }

    /// Defence in depth: handed a live request anyway, each sandbox connector refuses it.
    #[tokio::test]
    async fn sandbox_connectors_refuse_live_requests() {
        let r = registry();
        let sb = r.sandbox_pages();
        let e = sb
            .number
            .issue(&IssueRequest {
                payment_id: "p".into(),
                mode: Mode::Live,
                target: IssueTarget::Payeasy,
                amount: 1000,
                deadline_ms: 0,
                shopper_name_kana: None,
                shopper_phone: None,
                shopper_name: None,
                shopper_email: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), SANDBOX_REFUSES_LIVE);
        let e = sb
            .bank
            .start(&crate::connectors::bank::StartRequest {
                payment_id: "p".into(),
                mode: Mode::Live,
                bank: Bank::parse("0005").unwrap(),
                amount: 1000,
                item_name: "x".into(),
                return_url: "http://127.0.0.1/r".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), SANDBOX_REFUSES_LIVE);
        let e = sb
            .carrier
            .start(&crate::connectors::carrier::StartRequest {
                payment_id: "p".into(),
                mode: Mode::Live,
                carrier: Carrier::Docomo,
                amount: 1000,
                billing: BillingKind::OneOff,
                item_name: "x".into(),
                return_url: "http://127.0.0.1/r".into(),
                feature_phone: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), SANDBOX_REFUSES_LIVE);
        let e = sb
            .carrier
            .charge_continuous(&crate::connectors::carrier::ContinuousChargeRequest {
                charge_id: "c".into(),
                mode: Mode::Live,
                carrier: Carrier::Au,
                subscription_ref: "sbxsub_1".into(),
                amount: 1000,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), SANDBOX_REFUSES_LIVE);
        let card = crate::domain::card::CardNumber::parse("4111111111111111").unwrap();
        let e = sb
            .card
            .authenticate(&crate::connectors::card::AuthenticateRequest {
                payment_id: "p".into(),
                mode: Mode::Live,
                card,
                expiry: crate::domain::card::Expiry::new(2099, 12).unwrap(),
                amount: 1000,
                cvc: crate::domain::card::SecurityCode::parse(
                    "123",
                    crate::domain::card::Brand::Visa,
                )
                .unwrap(),
                holder: None,
                return_url: String::new(),
            })
            .await
            .unwrap_err();
        // One error shape for every family: the card sandbox answers the same code.
        assert_eq!(e.code(), SANDBOX_REFUSES_LIVE);
    }
}
