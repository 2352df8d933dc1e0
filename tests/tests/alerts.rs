//! Alerting end to end: a real daemon goes offline and comes back, a real
//! HTTP receiver gets signed webhooks, a real SMTP server gets e-mail over
//! STARTTLS, integrators read `ritma.<org>.alerts`; deliveries are retried
//! and survive a controller restart; silences hold notifications back; and
//! what another org, a careless URL or bad input could do is refused.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed assertion

#[path = "alerts/email.rs"]
mod email;
#[path = "alerts/helpers.rs"]
mod helpers;
#[path = "alerts/rules.rs"]
mod rules;
#[path = "alerts/safety.rs"]
mod safety;
#[path = "alerts/silences.rs"]
mod silences;
#[path = "alerts/validation.rs"]
mod validation;
#[path = "alerts/webhooks.rs"]
mod webhooks;
