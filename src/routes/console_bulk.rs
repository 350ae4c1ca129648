//! `POST /console/payments/bulk`: card capture (売上確定) or cancel (取消) of the ticked payments,
//! or of every payment matching the current search (全件チェック, not only the page shown), after a
//! confirmation page with the count and the amount total. If the payments a search matches change
//! between the confirmation and the post (count or total), the confirmation is shown again with
//! the new numbers and nothing is done.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::console::actions::{self, ActionError};
use crate::console::audit;
use crate::console::auth::Staff;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::search::{self, Cursor, Filter};
use crate::console::views::{self, Chrome};
use crate::form;
use crate::routes::console::{filter_of, html};
use crate::routes::console_admin::{admin_form, op_label};
use crate::state::AppState;
use crate::util::format_yen;

/// The most payments one bulk post acts on (each is a processor call, made one by one).
pub const BULK_MAX: i64 = 500;

/// What the bulk action applies to.
enum Target {
    /// The ticked payments of the page.
    Ids(Vec<String>),
    /// Every payment matching the search.
    Search(Box<Filter>),
}

/// `merchant=…&` for a search of one merchant by an operator or owner staff, else empty.
fn merchant_query(staff: &Staff, f: &Filter) -> String {
    match (staff.scope().is_multi(), f.merchant_id.as_deref()) {
        (true, Some(m)) => format!(
            "merchant={}&",
            form_urlencoded::byte_serialize(m.as_bytes()).collect::<String>()
        ),
        _ => String::new(),
    }
}

/// The ids of every payment the search matches (at most [`BULK_MAX`]), in the list's order.
async fn search_ids(state: &AppState, f: &Filter) -> ConsoleResult<Vec<String>> {
    let mut ids = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let (rows, next) = search::page(&state.db, f, after.as_ref(), 100).await?;
        ids.extend(rows.into_iter().map(|p| p.id));
        match next {
            Some(c) if (ids.len() as i64) < BULK_MAX => after = Some(c),
            _ => break,
        }
    }
    ids.truncate(BULK_MAX as usize);
    Ok(ids)
}

/// Count and total of the target; ticked payments the user may not see count nothing (their
/// action is refused as not found).
async fn totals(state: &AppState, staff: &Staff, t: &Target) -> ConsoleResult<(i64, i64)> {
    match t {
        Target::Search(f) => Ok(search::totals(&state.db, f).await?),
        Target::Ids(ids) => {
            let (mut n, mut sum) = (0, 0);
            for id in ids {
                let p = crate::db::payments::get_in(&state.db, staff.scope(), id).await?;
                if let Some(p) = p {
                    n += 1;
                    sum += p.amount;
                }
            }
            Ok((n, sum))
        }
    }
}

pub async fn bulk(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let f = admin_form(&state, &staff, &headers, &body)?;
    let op = form::get(&f, "op");
    let label = match op {
        "capture" | "cancel" => op_label(op).unwrap_or(""),
        _ => return Err(ConsoleError::Bad("操作が正しくありません。".into())),
    };
    let target = if form::get(&f, "all") == "search" {
        Target::Search(Box::new(filter_of(&staff, &f).map_err(ConsoleError::Bad)?))
    } else {
        let ids: Vec<String> = f
            .iter()
            .filter(|(k, _)| k == "ids")
            .map(|(_, v)| v.clone())
            .take(BULK_MAX as usize)
            .collect();
        if ids.is_empty() {
            return Err(ConsoleError::Bad("決済を選択してください。".into()));
        }
        Target::Ids(ids)
    };
    let (count, total) = totals(&state, &staff, &target).await?;
    if count == 0 {
        return Err(ConsoleError::Bad(
            "対象の決済がありません。検索条件を確認してください。".into(),
        ));
    }
    if count > BULK_MAX {
        return Err(ConsoleError::Bad(format!(
            "対象が{}件あります。一括操作は{BULK_MAX}件までです。検索条件を絞り込んでください。",
            format_yen(count)
        )));
    }
    let expect = format!("{count}:{total}");
    // Ticked payments are a fixed set; a search may match other payments by now.
    let changed = matches!(target, Target::Search(_))
        && form::get(&f, "confirm") == "yes"
        && form::get(&f, "expect") != expect;
    if form::get(&f, "confirm") != "yes" || changed {
        let mut lines = Vec::new();
        if changed {
            lines.push(
                "確認画面を表示した後に対象の決済が変わりました。次の内容を確認してもう一度実行してください。"
                    .to_owned(),
            );
        }
        let mut fields = vec![
            ("op".to_owned(), op.to_owned()),
            ("expect".to_owned(), expect),
        ];
        let back = match &target {
            Target::Search(flt) => {
                lines.push(format!(
                    "対象: 検索条件に一致するすべての決済 {}件",
                    format_yen(count)
                ));
                fields.push(("all".into(), "search".into()));
                let mq = merchant_query(&staff, flt);
                if let Some(m) = flt.merchant_id.as_ref().filter(|_| !mq.is_empty()) {
                    fields.push(("merchant".into(), m.clone()));
                }
                let q = flt.query();
                fields.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
                format!("/console/payments?{mq}{q}")
            }
            Target::Ids(ids) => {
                lines.push(format!("対象: 選択した決済 {}件", format_yen(count)));
                lines.extend(ids.iter().cloned());
                fields.extend(ids.iter().map(|i| ("ids".to_owned(), i.clone())));
                "/console/payments".into()
            }
        };
        lines.insert(
            usize::from(changed) + 1,
            format!("合計金額: {}円", format_yen(total)),
        );
        lines.insert(
            usize::from(changed) + 2,
            "カード決済以外や、現在のステータスでは実行できない決済は実行されず、結果に理由が表示されます。"
                .into(),
        );
        let page = views::Confirm {
            c: Chrome::staff(&state, &staff),
            title: format!("一括{label}の確認（{}件）", format_yen(count)),
            lines,
            action: "/console/payments/bulk".into(),
            fields,
            back,
        };
        return html(StatusCode::OK, &page);
    }
    let ids = match &target {
        Target::Ids(ids) => ids.clone(),
        Target::Search(flt) => search_ids(&state, flt).await?,
    };
    let actor = staff.actor();
    let (mut done, mut refused) = (0, 0);
    let mut lines = Vec::new();
    for id in &ids {
        let r = match op {
            "capture" => actions::capture(&state, staff.scope(), id, None, &actor).await,
            _ => actions::cancel(&state, staff.scope(), id, &actor).await,
        };
        let (merchant, outcome) = match &r {
            Ok(p) => (Some(p.merchant_id.clone()), "ok".to_owned()),
            Err(ActionError::Db(e)) => {
                return Err(ConsoleError::Db(crate::db::Error::Protocol(e.to_string())))
            }
            Err(e) => (None, format!("refused: {e}")),
        };
        audit::staff(
            &state.db,
            &staff,
            merchant.as_deref(),
            &format!("payment.bulk_{op}"),
            id,
            &outcome,
        )
        .await?;
        if r.is_ok() {
            done += 1;
            lines.push(format!("{id}: 完了"));
        } else {
            refused += 1;
            lines.push(format!("{id}: {outcome}"));
        }
    }
    if let Target::Search(flt) = &target {
        audit::staff(
            &state.db,
            &staff,
            flt.merchant_id.as_deref(),
            "bulk.search",
            op,
            &format!(
                "count={count} total={total} done={done} refused={refused} {}",
                flt.query()
            ),
        )
        .await?;
    }
    lines.insert(0, format!("完了: {done}件 / 実行できず: {refused}件"));
    let page = views::Outcome {
        c: Chrome::staff(&state, &staff),
        title: format!("一括{label}の結果"),
        lines,
        back: "/console/payments".into(),
    };
    html(StatusCode::OK, &page)
}
