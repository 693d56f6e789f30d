//! The privacy budget accountant.
//!
//! A task has a total budget in its mechanism's unit: epsilon for
//! `laplace` (basic composition: k releases at epsilon_i are
//! `sum epsilon_i`-DP, Dwork and Roth 2014, Theorem 3.16) or rho for
//! `gaussian` (zCDP composes by adding rho, Bun and Steinke 2016,
//! Lemma 1.7). Every release spends the parameter that holds for it
//! ([`crate::Guarantee::release_cost`]: the stated one, or more for a task
//! created before relations were declared); a release that
//! would take the total spent above the budget is refused. Everything is an
//! exact rational, so a budget of 1 at 0.4 per release allows exactly two
//! releases and never two-and-a-rounding-error.
//!
//! The accountant is stateless: the server stores `spent` next to the task,
//! and calls [`try_spend`] inside the transaction that records the release.

use num_traits::ToPrimitive;

use super::{DpError, Rational};

/// Spends `cost` from a budget of `total` of which `spent` is already used,
/// returning the new amount spent, or
/// [`DpError::BudgetExhausted`] (which says what to do instead) if
/// `spent + cost` would exceed `total`. Spending exactly the whole budget is
/// allowed.
pub fn try_spend(total: &Rational, spent: &Rational, cost: &Rational) -> Result<Rational, DpError> {
    let new_spent = spent.add(cost);
    if new_spent > *total {
        return Err(DpError::BudgetExhausted {
            total: total.clone(),
            spent: spent.clone(),
            requested: cost.clone(),
        });
    }
    Ok(new_spent)
}

/// How many more releases at `cost` fit in what is left of `total` after
/// `spent`: `floor((total - spent) / cost)`, saturating at `u64::MAX`;
/// `u64::MAX` for a zero cost. For display ("3 releases left").
pub fn releases_left(total: &Rational, spent: &Rational, cost: &Rational) -> u64 {
    let Some(left) = total.checked_sub(spent) else {
        return 0;
    };
    match left.checked_div(cost) {
        None => u64::MAX,
        Some(n) => n
            .as_ratio()
            .floor()
            .to_integer()
            .to_u64()
            .unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_left_counts_whole_releases() {
        let total = Rational::new(1, 1);
        let cost = Rational::new(2, 5);
        assert_eq!(releases_left(&total, &Rational::zero(), &cost), 2);
        assert_eq!(releases_left(&total, &Rational::new(4, 5), &cost), 0);
        assert_eq!(releases_left(&total, &Rational::new(3, 1), &cost), 0);
        assert_eq!(
            releases_left(&total, &Rational::zero(), &Rational::zero()),
            u64::MAX
        );
    }
}
