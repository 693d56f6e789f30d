//! The DP API as the server, client and keytool use it: parsing mechanisms
//! (including bad input), the gaussian-eps conversion, budget accounting in
//! exact arithmetic, and the planner.

use hetally_dp::{
    error_for, gaussian_eps_to_rho, plan, releases_left, try_spend, zcdp_to_approx_dp, DpError,
    DpMechanism, ErrorTarget, Guarantee, MechanismKind, MechanismSpec, Noise, PlanRequest,
    Rational, Relation,
};
use hetally_protocol::codec::{Reader, Writer};
use hetally_protocol::Measurement;

fn r(s: &str) -> Rational {
    s.parse().unwrap()
}

#[test]
fn mechanisms_parse_and_round_trip() {
    let cases = [
        ("none", DpMechanism::None),
        ("laplace:0.5", DpMechanism::Laplace { epsilon: r("1/2") }),
        (
            "  Laplace : 2e-1 ",
            DpMechanism::Laplace { epsilon: r("0.2") },
        ),
        ("gaussian:1/8", DpMechanism::Gaussian { rho: r("0.125") }),
        (
            "gaussian:0.017469",
            DpMechanism::Gaussian { rho: r("0.017469") },
        ),
    ];
    for (text, want) in cases {
        let m: DpMechanism = text.parse().unwrap();
        assert_eq!(m, want, "{text}");
        // Display is a text form that parses back to the same mechanism, and
        // the binary encoding round-trips.
        assert_eq!(m.to_string().parse::<DpMechanism>().unwrap(), m);
        let mut w = Writer::new();
        m.encode(&mut w);
        let bytes = w.finish();
        let mut rd = Reader::new(&bytes);
        assert_eq!(DpMechanism::decode(&mut rd).unwrap(), m);
        rd.finish("mechanism").unwrap();
    }
}

#[test]
fn bad_mechanisms_are_rejected_with_clear_errors() {
    let cases: [(&str, &str); 16] = [
        ("", "expected none, laplace:EPSILON"),
        ("laplace", "expected none, laplace:EPSILON"),
        ("laplace:", "not a non-negative decimal"),
        ("laplace:0", "epsilon must be greater than zero"),
        ("laplace:-1", "not a non-negative decimal"),
        ("laplace:abc", "not a non-negative decimal"),
        ("laplace:1:2", "expected none, laplace:EPSILON"),
        ("none:1", "expected none, laplace:EPSILON"),
        ("uniform:1", "expected none, laplace:EPSILON"),
        ("gaussian:0", "rho must be greater than zero"),
        ("gaussian:1/0", "not a non-negative decimal"),
        ("gaussian-eps:1", "gaussian-eps:EPSILON:DELTA"),
        ("gaussian-eps:1:0", "delta must be between"),
        ("gaussian-eps:1:1", "delta must be between"),
        (
            "gaussian-eps:0:1e-6",
            "epsilon must be a finite number greater than zero",
        ),
        ("gaussian-eps:1:2", "delta must be between"),
    ];
    for (text, message) in cases {
        let err = text.parse::<DpMechanism>().unwrap_err();
        assert!(err.to_string().contains(message), "{text:?}: {err}");
    }
}

#[test]
fn gaussian_eps_converts_to_a_safe_rho() {
    // (sqrt(ln 1e6 + 1) - sqrt(ln 1e6))^2 = 0.0174689047691..., rounded down
    // to six significant digits.
    let spec: MechanismSpec = "gaussian-eps:1:1e-6".parse().unwrap();
    let rho = r("0.0174689");
    assert_eq!(spec.mechanism(), DpMechanism::Gaussian { rho: rho.clone() });
    assert_eq!(
        "gaussian-eps:1:1e-6".parse::<DpMechanism>().unwrap(),
        spec.mechanism()
    );
    let explained = spec.explain();
    println!("{explained}");
    assert!(
        explained.starts_with("gaussian-eps:1:0.000001 → gaussian:0.0174689"),
        "{explained}"
    );
    // The rho implies at most the requested epsilon, and not much less.
    let eps = zcdp_to_approx_dp(&rho, 1e-6);
    assert!(eps <= 1.0 && eps > 0.9999, "{eps}");

    for (epsilon, delta, want) in [
        ("0.5", "1e-9", "0.00298009"),
        ("3", "1e-5", "0.173483"),
        ("0.01", "1e-6", "0.00000180890"),
    ] {
        let rho = gaussian_eps_to_rho(&r(epsilon), &r(delta)).unwrap();
        assert_eq!(rho, r(want), "({epsilon}, {delta})");
        assert!(zcdp_to_approx_dp(&rho, r(delta).to_f64()) <= r(epsilon).to_f64());
    }
    // Display shows the zCDP guarantee with its (epsilon, delta) equivalent.
    let described = spec.mechanism().describe(1e-6);
    assert!(
        described.contains("0.0174689-zCDP") && described.contains("(1.0000, 1e-6)-DP"),
        "{described}"
    );
    assert!(zcdp_to_approx_dp(&rho, 1.5).is_nan());
}

#[test]
fn budget_arithmetic_is_exact() {
    // 1.0 at 0.4 per release: exactly two releases.
    let total = r("1.0");
    let cost = cost_of("count", "laplace:0.4");
    let spent = try_spend(&total, &Rational::zero(), &cost).unwrap();
    let spent = try_spend(&total, &spent, &cost).unwrap();
    assert_eq!(spent, r("0.8"));
    assert_eq!(releases_left(&total, &spent, &cost), 0);
    let err = try_spend(&total, &spent, &cost).unwrap_err();
    assert_eq!(
        err,
        DpError::BudgetExhausted {
            total: total.clone(),
            spent: r("0.8"),
            requested: r("0.4"),
        }
    );
    let message = err.to_string();
    println!("{message}");
    assert!(message.contains("costs 0.4") && message.contains("spent 0.8 of its total 1"));
    assert!(message.contains("collect larger batches less often") && message.contains("new task"));

    // Ten releases of 0.1 spend exactly 1 (in floating point they would
    // overshoot and refuse the tenth), and thirds add up to exactly 1.
    let mut spent = Rational::zero();
    for _ in 0..10 {
        spent = try_spend(&total, &spent, &r("0.1")).unwrap();
    }
    assert_eq!(spent, total);
    assert!(try_spend(&total, &spent, &r("1e-30")).is_err());
    let mut spent = Rational::zero();
    for _ in 0..3 {
        spent = try_spend(&total, &spent, &r("1/3")).unwrap();
    }
    assert_eq!(spent, total);

    // zCDP budgets add rho in the same way.
    let rho_cost = cost_of("histogram:4", "gaussian:1/8");
    assert_eq!(releases_left(&r("0.5"), &Rational::zero(), &rho_cost), 4);
    let none = Guarantee::for_task(&Measurement::Count, &DpMechanism::None, None).unwrap();
    assert_eq!(none.release_cost(), None);
    assert_eq!(DpMechanism::None.budget_unit(), None);
    assert_eq!(
        "gaussian:1".parse::<DpMechanism>().unwrap().budget_unit(),
        Some("rho")
    );
}

/// What one release of a replace-one task costs.
fn cost_of(measurement: &str, mechanism: &str) -> Rational {
    Guarantee::for_task(
        &measurement.parse().unwrap(),
        &mechanism.parse().unwrap(),
        Some(Relation::ReplaceOne),
    )
    .unwrap()
    .release_cost()
    .unwrap()
}

fn request(
    measurement: &str,
    kind: &str,
    error: &str,
    reports: Option<u64>,
    confidence: f64,
) -> PlanRequest {
    PlanRequest {
        measurement: measurement.parse().unwrap(),
        relation: Relation::ReplaceOne,
        kind: kind.parse().unwrap(),
        max_error: error.parse().unwrap(),
        reports,
        confidence,
    }
}

/// The grid point just below `value` (three significant digits).
fn previous_grid_point(value: &Rational) -> Rational {
    let exponent = value.to_f64().log10().floor() as i32 - 2;
    value.checked_sub(&r(&format!("1e{exponent}"))).unwrap()
}

#[test]
fn planner_finds_the_smallest_parameter() {
    // The keytool's example: histogram:11, 1000 reports, ±5% at 95%.
    for kind in ["laplace", "gaussian"] {
        let req = request("histogram:11", kind, "5%", Some(1000), 0.95);
        let p = plan(&req).unwrap();
        println!("{p}");
        assert_eq!(p.max_error, 50);
        assert!(p.half_width <= 50);
        assert_eq!(p.full_scale, Some(1000));
        let param = match &p.mechanism {
            DpMechanism::Laplace { epsilon } => epsilon.clone(),
            DpMechanism::Gaussian { rho } => rho.clone(),
            other => panic!("unexpected {other}"),
        };
        // Meets the target, and the next smaller clean value does not.
        assert_eq!(
            error_for(&req.measurement, &p.mechanism, Some(req.relation), 0.95).unwrap(),
            p.half_width
        );
        let smaller = req.kind.with_parameter(previous_grid_point(&param));
        assert!(
            error_for(&req.measurement, &smaller, Some(req.relation), 0.95).unwrap() > 50,
            "{smaller}"
        );
        // Close to the continuous-distribution estimate, for replace-one's
        // histogram sensitivity of 2: Laplace needs P(|X| > 50) ~
        // exp(-51/s) <= 0.05 with s = 2/epsilon, so epsilon ~ 2 ln(20)/51;
        // Gaussian needs sigma ~ 50.5/1.96 with sigma^2 = 2/(2 rho), so
        // rho ~ 1/sigma^2.
        let estimate = match kind {
            "laplace" => 2.0 * 20f64.ln() / 51.0,
            _ => 1.0 / (50.5f64 / 1.96).powi(2),
        };
        let ratio = param.to_f64() / estimate;
        assert!(
            (0.97..1.03).contains(&ratio),
            "{kind}: {param} vs {estimate}"
        );
    }
}

#[test]
fn planner_handles_wide_values_and_absolute_errors() {
    // sum:32 over a million reports, ±0.01% at 99%: sigma is in the
    // hundreds of thousands, where the Gaussian sums use Euler–Maclaurin.
    let req = request("sum:32", "gaussian", "0.01%", Some(1_000_000), 0.99);
    let p = plan(&req).unwrap();
    println!("{p}");
    assert_eq!(p.max_error, 429_496_729_500);
    assert!(p.half_width <= p.max_error);
    let Noise::DiscreteGaussian { sigma } = &p.noise else {
        panic!("{}", p.noise)
    };
    assert!(sigma.to_f64() > 1024.0);

    let req = request("count", "laplace", "10", None, 0.9);
    let p = plan(&req).unwrap();
    assert!(p.half_width <= 10);
    assert_eq!(p.full_scale, None);
    // Zero error is possible with enough epsilon: P(X = 0) >= 90%.
    let p = plan(&request("count", "laplace", "0", None, 0.9)).unwrap();
    assert_eq!(p.half_width, 0);
}

#[test]
fn planner_errors_say_what_is_missing() {
    let err = plan(&request("count", "laplace", "5%", None, 0.95)).unwrap_err();
    assert!(err.to_string().contains("number of reports"), "{err}");
    let err = plan(&request("count", "laplace", "5", None, 1.0)).unwrap_err();
    assert!(err.to_string().contains("confidence"), "{err}");
    assert!("cauchy".parse::<MechanismKind>().is_err());
    assert!("5 %%".parse::<ErrorTarget>().is_err());
}

#[test]
fn error_for_reports_the_interval_of_a_mechanism() {
    let count = Measurement::Count;
    // Laplace scale 1: P(|X| > k) = 2 e^-(k+1) / (1 + e^-1); k = 2 gives
    // 0.0729, k = 3 gives 0.0268, so the 95% half-width is 3.
    assert_eq!(
        error_for(&count, &"laplace:1".parse().unwrap(), None, 0.95).unwrap(),
        3
    );
    assert_eq!(
        error_for(&count, &DpMechanism::None, None, 0.95).unwrap(),
        0
    );
    // Wider measurements need more noise for the same epsilon.
    let narrow = error_for(&count, &"laplace:1".parse().unwrap(), None, 0.95).unwrap();
    let wide = error_for(
        &"sum:8".parse().unwrap(),
        &"laplace:1".parse().unwrap(),
        None,
        0.95,
    )
    .unwrap();
    assert!(wide > 200 * narrow);
    // A histogram's interval doubles under replace-one (sensitivity 2).
    let hist: Measurement = "histogram:4".parse().unwrap();
    let laplace: DpMechanism = "laplace:1".parse().unwrap();
    let legacy = error_for(&hist, &laplace, None, 0.95).unwrap();
    let replace = error_for(&hist, &laplace, Some(Relation::ReplaceOne), 0.95).unwrap();
    assert_eq!((legacy, replace), (3, 6));
}
