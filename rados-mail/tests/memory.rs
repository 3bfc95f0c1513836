//! The mail-store cases against the in-memory backend.

mod fetch;
mod suite;

fn store(_case: &str) -> (rados_mail::MailStore, String) {
    (rados_mail::MailStore::in_memory(rados_mail::Config::default()), "alice".to_string())
}

mail_cases!(store);
bound_cases!(store);
txn_cases!(store);
keyword_cases!(store);
watch_cases!(store);
recent_cases!(store);
block_cases!(store);
damage_cases!(store);
ack_lost_cases!(store);
ack_lost_sweep_cases!(store);
ack_lost_delivery_cases!(store);
ack_lost_delivery_sweep_cases!(store);
repair_cases!(store);
repair_sweep_cases!(store);
fetch_cases!(store);
