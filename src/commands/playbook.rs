//! `gameday playbook confirm RUN STEP`: record that a step of a running drill is done.

use crate::cli::PlaybookCommand;
use crate::engine::playbook;

/// Exit 0 when the confirmation is recorded, 2 when the run, its playbook or the step is not
/// found (with what would be), 5 when the run folder cannot be written.
pub fn run(cmd: &PlaybookCommand) -> i32 {
    let PlaybookCommand::Confirm { run, step, by } = cmd;
    let by = by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    let result = playbook::run_dir(run).and_then(|dir| playbook::confirm(&dir, step, &by));
    match result {
        Ok((steps, c)) => {
            println!(
                "confirmed step {} of {} (`{}`) by {by} at {}",
                c.step,
                steps.name,
                steps.steps[c.step - 1],
                c.at
            );
            0
        }
        Err(e @ playbook::ConfirmError::Io { .. }) => {
            eprintln!("gameday playbook confirm: {e}");
            super::EXIT_UNREACHABLE
        }
        Err(e) => {
            eprintln!("gameday playbook confirm: {e}");
            super::EXIT_INVALID
        }
    }
}
