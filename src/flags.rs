//! Building a binary's clap config from its own defaults, for tests and launchers.

use clap::{Command, CommandFactory, FromArgMatches};

/// `C`'s flags with their `env` fallbacks removed: clap reads those even in `parse_from`, so
/// without this a developer's exported `DATABASE_URL` would leak into a test.
pub fn without_environment<C: CommandFactory>() -> Command {
    C::command().mut_args(|arg| arg.env(None::<&str>))
}

/// `C` from `args` (the binary's name first) and the flags' own defaults, ignoring the
/// environment.
pub fn parse_without_environment<C, I, T>(args: I) -> Result<C, clap::Error>
where
    C: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    without_environment::<C>()
        .try_get_matches_from(args)
        .and_then(|matches| C::from_arg_matches(&matches))
}
