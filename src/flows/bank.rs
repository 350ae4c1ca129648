//! Bank net (銀行ネット): the shopper picks a bank, approves on the bank's page and comes back with
//! a signed result; a payment nobody comes back for times out (`timeout_due`). The flow itself is
//! the one-step redirect flow of `flows::redirect`; this module says what is particular to banks.

use std::sync::Arc;

use async_trait::async_trait;

use crate::connectors::bank::{BankConnector, StartRequest};
use crate::connectors::error::ConnectorError;
use crate::connectors::redirect::{SignedAnswer, StartOutcome};
use crate::connectors::registry::{MerchantConnectors, Resolved};
use crate::db::Db;
use crate::domain::bank::{self, Bank, BankStatus};
use crate::domain::lifecycle::TransitionError;
use crate::domain::payment::PaymentStatus;
use crate::domain::processor::ConnectorId;
use crate::domain::redirect::Step;
use crate::domain::Method;
use crate::flows::redirect::{RedirectMethod, StartArgs};

pub const METHOD: Method = Method::Banknet;

/// Bank net as a [`RedirectMethod`].
pub struct BankNet;

#[async_trait]
impl RedirectMethod for BankNet {
    type Institution = Bank;
    type Status = BankStatus;
    type Connector = dyn BankConnector;

    const METHOD: Method = METHOD;
    const NAME: &'static str = "bank";
    const FIELD: &'static str = "bank";
    const DETAIL_KEYS: (&'static str, &'static str) = ("bank_code", "bank_name");
    const TXN_KEY: &'static str = "bank_txn_id";
    // Bank net has no refunds through us: nothing draws on a captured amount.
    const RECORDS_CAPTURE: bool = false;
    const RESULT_NAMES_INSTITUTION: bool = false;
    const WAITING: BankStatus = BankStatus::AwaitingBank;
    const PAID: BankStatus = BankStatus::Paid;
    const TIMED_OUT: BankStatus = BankStatus::TimedOut;
    const PENDING_TIMEOUT_MS: i64 = bank::PENDING_TIMEOUT_MS;

    fn status(s: PaymentStatus) -> Option<BankStatus> {
        s.bank()
    }
    fn apply(
        from: BankStatus,
        step: Step,
        created_ms: i64,
    ) -> Result<BankStatus, TransitionError<BankStatus>> {
        bank::apply(from, step.into(), created_ms)
    }
    fn event_type(s: BankStatus) -> Option<&'static str> {
        s.event_type()
    }
    fn connector(c: &MerchantConnectors) -> Option<Resolved<dyn BankConnector>> {
        c.bank()
    }
    fn connector_for(c: &MerchantConnectors, id: &ConnectorId) -> Option<Arc<dyn BankConnector>> {
        c.bank_for(id)
    }
    async fn start(
        c: &dyn BankConnector,
        a: StartArgs<Bank>,
    ) -> Result<StartOutcome, ConnectorError> {
        c.start(&StartRequest {
            payment_id: a.payment_id,
            mode: a.mode,
            bank: a.institution,
            amount: a.amount,
            item_name: a.item_name,
            return_url: a.return_url,
        })
        .await
    }
    /// A bank's return carries its whole answer, signed: nothing to ask server-side.
    async fn confirm(
        c: &dyn BankConnector,
        params: &[(String, String)],
        _session: &str,
        now_ms: i64,
    ) -> Result<SignedAnswer<Bank>, ConnectorError> {
        let r = c.verify_return(params, now_ms).await?;
        Ok(SignedAnswer {
            payment_id: r.payment_id,
            session_id: r.session_id,
            institution: r.bank,
            amount: r.amount,
            outcome: r.outcome.into(),
        })
    }
}

/// Fails every bank-net payment that has waited longer than [`bank::PENDING_TIMEOUT_MS`]
/// (`timed_out`, notification `payment.expired`) and reopens its checkout.
pub async fn timeout_due(db: &Db, now_ms: i64) -> anyhow::Result<usize> {
    crate::flows::redirect::timeout_due::<BankNet>(db, now_ms).await
}
