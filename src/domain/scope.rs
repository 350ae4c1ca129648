//! Which merchants a console user or API caller may see: every merchant (operators), the
//! tenants of one owner (テナントオプション: owner staff) or one merchant. The database layer
//! turns a scope into a SQL condition (`db::scope`), so nothing outside it is fetched.

/// The merchants a caller may see and act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every merchant (operators).
    All,
    /// Every tenant merchant of this owner (owner staff, owner API keys).
    Owner(String),
    /// This merchant only (merchant staff).
    Merchant(String),
}

impl Scope {
    /// The one merchant of a merchant scope; `None` when the scope may span several.
    pub fn merchant(&self) -> Option<&str> {
        match self {
            Scope::Merchant(m) => Some(m),
            _ => None,
        }
    }

    /// Operators only.
    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }

    /// May span several merchants (operators and owner staff): lists show a merchant column
    /// and a merchant filter.
    pub fn is_multi(&self) -> bool {
        !matches!(self, Scope::Merchant(_))
    }

    /// The stored kind and value a SQL condition binds (`db::scope::visible`).
    pub fn sql_parts(&self) -> (&'static str, &str) {
        match self {
            Scope::All => ("all", ""),
            Scope::Owner(o) => ("owner", o),
            Scope::Merchant(m) => ("merchant", m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Scope;

    #[test]
    fn kinds_and_values() {
        let owner = Scope::Owner("own_a".into());
        let m = Scope::Merchant("m_1".into());
        assert_eq!(owner.sql_parts(), ("owner", "own_a"));
        assert_eq!(m.sql_parts(), ("merchant", "m_1"));
        assert_eq!(Scope::All.sql_parts(), ("all", ""));
        assert!(owner.is_multi() && Scope::All.is_multi() && !m.is_multi());
        assert!(Scope::All.is_all() && !owner.is_all());
        assert_eq!(m.merchant(), Some("m_1"));
        assert_eq!(owner.merchant(), None);
    }
}
