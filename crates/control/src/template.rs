//! Templates: minijinja with Jinja2's Python methods (`vars.get("x")`, `name.upper()`), and
//! the `money` filter.
//!
//! Set variables and messages are Jinja2 templates. They are compiled once, when the function
//! is loaded, so a syntax error is a configuration error with its place; rendering errors at run
//! time (a filter given the wrong type, say) fail the session with `internal-error`.

use minijinja::{Environment, Error, ErrorKind, Value};

use crate::currency::format_money;

/// The template environment every function uses: Jinja2 semantics for undefined values (they
/// render empty), Python-compatible methods, and the `money` filter.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_filter("money", money);
    env
}

/// `{{ amount | money(currency) }}`: minor units formatted in their currency (`$42.00`).
fn money(amount: Value, currency: String) -> Result<String, Error> {
    let minor = i64::try_from(amount.clone()).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("money expects an integer amount in minor units, got {amount}"),
        )
    })?;
    Ok(format_money(minor, &currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn jinja2_python_methods_and_the_money_filter_work() {
        let env = environment();
        let render = |src: &str| {
            env.render_str(
                src,
                context! {
                    vars => context! { order_id => "10482" },
                    params => context! { name => "ada lovelace" },
                    amount => 4200, currency => "USD",
                },
            )
        };
        assert_eq!(render(r#"{{vars.get("order_id")}}"#).unwrap(), "10482");
        assert_eq!(render(r#"{{vars.get("missing", "n/a")}}"#).unwrap(), "n/a");
        assert_eq!(render("{{ params.name.title() }}").unwrap(), "Ada Lovelace");
        assert_eq!(render("{{ params.name | upper }}").unwrap(), "ADA LOVELACE");
        assert_eq!(render("{{ amount | money(currency) }}").unwrap(), "$42.00");
        assert_eq!(render("{{ 4200 | money('JPY') }}").unwrap(), "¥4,200");
        assert_eq!(render("[{{ params.nothing }}]").unwrap(), "[]");
        let err = render("{{ 'x' | money('USD') }}").unwrap_err();
        assert!(err.to_string().contains("minor units"), "{err}");
    }
}
