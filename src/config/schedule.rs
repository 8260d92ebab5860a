//! The schedule durations of checks (`interval`, `timeout` and `jitter`): the global values that
//! checks inherit, each check's own values, and the rules between them.
//!
//! The global values are compared with each other once, at their `global` fields. A check is
//! compared only where it sets one side of a rule itself, so a bad global value is not reported
//! again at every check that inherits it.

use std::time::Duration;

use super::{BuildContext, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, MIN_INTERVAL};

/// A global schedule duration as checks that set none inherit it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Inherited {
    /// Not set in the file or the environment, so the default applies.
    Unset,
    /// A valid value and the text written for it.
    Valid(Duration, String),
    /// An invalid value. It is reported once at its global field, and checks that inherit it are
    /// not compared with it or with a default it did not have.
    Invalid,
}

impl Inherited {
    /// The valid value, if any.
    pub(super) fn value(&self) -> Option<Duration> {
        match self {
            Inherited::Valid(duration, _) => Some(*duration),
            Inherited::Unset | Inherited::Invalid => None,
        }
    }
}

/// The global schedule durations that checks inherit.
#[derive(Debug, Clone)]
pub(super) struct GlobalSchedule {
    pub(super) interval: Inherited,
    pub(super) timeout: Inherited,
    pub(super) jitter: Inherited,
}

impl GlobalSchedule {
    /// Every value invalid, for a `global` block whose values cannot be read at all.
    pub(super) fn invalid() -> Self {
        GlobalSchedule {
            interval: Inherited::Invalid,
            timeout: Inherited::Invalid,
            jitter: Inherited::Invalid,
        }
    }
}

/// The schedule durations of one check, or `None` where a value is invalid.
pub(super) struct CheckSchedule {
    pub(super) interval: Option<Duration>,
    pub(super) timeout: Option<Duration>,
    pub(super) jitter: Option<Duration>,
}

/// One schedule duration and where it came from.
struct Setting {
    duration: Duration,
    /// The text written for the value, or empty for a default.
    text: String,
    /// Whether the value is written at the level being validated, not inherited or a default.
    own: bool,
}

/// Parses one global schedule duration, written as `text` at `global.NAME`.
pub(super) fn parse_global(
    ctx: &mut BuildContext<'_>,
    name: &str,
    text: Option<&str>,
) -> Inherited {
    let Some(text) = text else {
        return Inherited::Unset;
    };
    match ctx.duration(&format!("global.{name}"), text) {
        Some(duration) => Inherited::Valid(duration, text.to_string()),
        None => Inherited::Invalid,
    }
}

/// Checks the global schedule durations against the minimum and each other, once. An interval
/// below the minimum becomes invalid, so that no check inherits it.
pub(super) fn validate_global(ctx: &mut BuildContext<'_>, schedule: &mut GlobalSchedule) {
    if let Some(interval) = schedule.interval.value() {
        if interval < MIN_INTERVAL {
            ctx.problem("global.interval", below_minimum(interval));
            schedule.interval = Inherited::Invalid;
        }
    }
    let interval = global_setting(&schedule.interval, Some(DEFAULT_INTERVAL));
    let timeout = global_setting(&schedule.timeout, Some(DEFAULT_TIMEOUT));
    let jitter = global_setting(&schedule.jitter, None);
    if let (Some(interval), Some(timeout)) = (&interval, &timeout) {
        require_shorter(ctx, "global.", "timeout", timeout, interval);
    }
    if let (Some(interval), Some(jitter)) = (&interval, &jitter) {
        require_shorter(ctx, "global.", "jitter", jitter, interval);
    }
}

/// Parses a check's own schedule durations, fills in the inherited ones and checks the rules
/// where the check sets a value itself.
pub(super) fn build_check(
    ctx: &mut BuildContext<'_>,
    interval: Option<&str>,
    timeout: Option<&str>,
    jitter: Option<&str>,
    global: &GlobalSchedule,
) -> CheckSchedule {
    let interval = check_setting(
        ctx,
        "interval",
        interval,
        &global.interval,
        DEFAULT_INTERVAL,
    );
    let timeout = check_setting(ctx, "timeout", timeout, &global.timeout, DEFAULT_TIMEOUT);
    let jitter = match (jitter, &global.jitter) {
        (Some(text), _) => own_setting(ctx, "jitter", text),
        (None, Inherited::Valid(duration, text)) => Some(Setting {
            duration: *duration,
            text: text.clone(),
            own: false,
        }),
        (None, Inherited::Invalid) => None,
        (None, Inherited::Unset) => interval.as_ref().map(|interval| Setting {
            duration: interval.duration / 10,
            text: String::new(),
            own: false,
        }),
    };

    if let Some(interval) = interval.as_ref().filter(|interval| interval.own) {
        if interval.duration < MIN_INTERVAL {
            ctx.problem("interval", below_minimum(interval.duration));
        }
    }
    if let (Some(interval), Some(timeout)) = (&interval, &timeout) {
        require_shorter(ctx, "", "timeout", timeout, interval);
    }
    if let (Some(interval), Some(jitter)) = (&interval, &jitter) {
        require_shorter(ctx, "", "jitter", jitter, interval);
    }
    CheckSchedule {
        interval: interval.map(|setting| setting.duration),
        timeout: timeout.map(|setting| setting.duration),
        jitter: jitter.map(|setting| setting.duration),
    }
}

/// A global value as a setting, with `default` when it is unset. `None` when it is invalid, or
/// unset without a default.
fn global_setting(value: &Inherited, default: Option<Duration>) -> Option<Setting> {
    match value {
        Inherited::Valid(duration, text) => Some(Setting {
            duration: *duration,
            text: text.clone(),
            own: true,
        }),
        Inherited::Unset => default.map(|duration| Setting {
            duration,
            text: String::new(),
            own: false,
        }),
        Inherited::Invalid => None,
    }
}

/// A check's value: its own when written, else the global one, else `default`.
fn check_setting(
    ctx: &mut BuildContext<'_>,
    name: &str,
    own: Option<&str>,
    inherited: &Inherited,
    default: Duration,
) -> Option<Setting> {
    if let Some(text) = own {
        return own_setting(ctx, name, text);
    }
    let (duration, text) = match inherited {
        Inherited::Valid(duration, text) => (*duration, text.clone()),
        Inherited::Unset => (default, String::new()),
        Inherited::Invalid => return None,
    };
    Some(Setting {
        duration,
        text,
        own: false,
    })
}

fn own_setting(ctx: &mut BuildContext<'_>, name: &str, text: &str) -> Option<Setting> {
    ctx.duration(name, text).map(|duration| Setting {
        duration,
        text: text.to_string(),
        own: true,
    })
}

fn below_minimum(interval: Duration) -> String {
    format!(
        "interval `{}` is shorter than the minimum of 1s",
        humantime::format_duration(interval)
    )
}

/// Records a problem when `value` (the timeout or the jitter, named `name`) is not shorter than
/// `interval`. The problem goes to `value`'s field when it is written at this level, else to the
/// interval's. When neither is written here, the level that sets them reports it, so nothing is
/// recorded. `prefix` is `global.` for the global block and empty for a check.
fn require_shorter(
    ctx: &mut BuildContext<'_>,
    prefix: &str,
    name: &str,
    value: &Setting,
    interval: &Setting,
) {
    if value.duration < interval.duration || !(value.own || interval.own) {
        return;
    }
    let field = if value.own { name } else { "interval" };
    let advice = if name == "timeout" {
        "a run must end before the next one starts, so shorten the timeout or lengthen the interval"
    } else {
        "use at most a fraction of the interval"
    };
    // humantime reads `M` as months, and `5M` written for five minutes is a common slip.
    let months_hint = if value.text.contains('M') {
        "; `M` is months; write `m` for minutes"
    } else {
        ""
    };
    ctx.problem(
        format!("{prefix}{field}"),
        format!(
            "{name} `{}` is not shorter than interval `{}`; {advice}{months_hint}",
            humantime::format_duration(value.duration),
            humantime::format_duration(interval.duration),
        ),
    );
}
