//! `holidays.toml`: the public holidays and worked weekend days that decide which days are
//! working days, for the appeal deadline of an infringement suppression (handbook 3.2).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use time::{Date, Duration, OffsetDateTime, UtcOffset, Weekday};
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};

/// The working-day calendar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holidays {
    pub holidays: BTreeSet<Date>,
    pub working_weekends: BTreeSet<Date>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidaysFile {
    holidays: Vec<Spanned<String>>,
    working_weekends: Vec<Spanned<String>>,
}

const DATE: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// China Standard Time, which the platform's working days are counted in.
pub const CHINA: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

impl Holidays {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> Holidays {
        let path = dir.join("holidays.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return Holidays::default();
        };
        let Some(file): Option<HolidaysFile> = parse_toml(&path, &text, problems) else {
            return Holidays::default();
        };
        let mut read = |dates: &[Spanned<String>], weekend: bool| {
            let mut set = BTreeSet::new();
            for date in dates {
                let line = line_of(&text, date.span().start);
                let mut problem = |message: String| {
                    problems.push(Problem {
                        file: path.clone(),
                        line,
                        message,
                    })
                };
                match Date::parse(date.get_ref(), DATE) {
                    Ok(day) if weekend && !is_weekend(day) => problem(format!(
                        "{} is a {}, not a weekend day",
                        date.get_ref(),
                        day.weekday()
                    )),
                    Ok(day) => {
                        set.insert(day);
                    }
                    Err(err) => problem(format!(
                        "{:?} is not a YYYY-MM-DD date: {err}",
                        date.get_ref()
                    )),
                }
            }
            set
        };
        let holidays = read(&file.holidays, false);
        let working_weekends = read(&file.working_weekends, true);
        Holidays {
            holidays,
            working_weekends,
        }
    }

    pub fn is_working_day(&self, day: Date) -> bool {
        if self.working_weekends.contains(&day) {
            return true;
        }
        !is_weekend(day) && !self.holidays.contains(&day)
    }

    /// The same time of day, `days` working days after `at`'s date in China Standard Time.
    pub fn working_days_after(&self, at: OffsetDateTime, days: u32) -> OffsetDateTime {
        let local = at.to_offset(CHINA);
        let mut day = local.date();
        let mut left = days;
        // A year has at most about 40 days off; the bound only guards against a calendar
        // that lists every day as a holiday.
        for _ in 0..(days as usize + 1) * 366 {
            if left == 0 {
                break;
            }
            day = day.next_day().unwrap_or(day);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        let shift = day - local.date();
        local + Duration::days(shift.whole_days())
    }
}

fn is_weekend(day: Date) -> bool {
    matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn shipped() -> Holidays {
        let mut problems = Vec::new();
        let holidays = Holidays::load(Path::new("rules"), &mut problems);
        assert_eq!(problems, []);
        holidays
    }

    #[test]
    fn two_working_days_skip_the_weekend() {
        // Friday 4 December 2026, 10:00 in Beijing: Monday and Tuesday are the two days.
        let at = datetime!(2026-12-04 02:00 UTC);
        assert_eq!(
            shipped().working_days_after(at, 2),
            datetime!(2026-12-08 10:00 +8)
        );
    }

    #[test]
    fn two_working_days_skip_the_national_day_holiday_and_count_a_worked_saturday() {
        // Wednesday 30 September 2026: 1–7 October are off, Thursday 8 and Friday 9 count.
        let at = datetime!(2026-09-30 12:00 +8);
        assert_eq!(
            shipped().working_days_after(at, 2),
            datetime!(2026-10-09 12:00 +8)
        );
        // Friday 9 October: Saturday 10 October is worked (调休).
        let at = datetime!(2026-10-09 12:00 +8);
        assert_eq!(
            shipped().working_days_after(at, 2),
            datetime!(2026-10-12 12:00 +8)
        );
    }

    #[test]
    fn the_day_is_taken_in_china_standard_time() {
        // 20:00 UTC on Thursday is 04:00 on Friday in Beijing.
        let at = datetime!(2026-12-03 20:00 UTC);
        assert_eq!(
            shipped().working_days_after(at, 2),
            datetime!(2026-12-08 04:00 +8)
        );
    }

    #[test]
    fn a_weekday_listed_as_a_working_weekend_is_reported_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("holidays.toml"),
            "holidays = [\"2026-13-01\"]\nworking_weekends = [\n  \"2026-12-07\",\n]\n",
        )
        .unwrap();
        let mut problems = Vec::new();
        Holidays::load(dir.path(), &mut problems);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 3], "{problems:?}");
        assert!(problems[1].message.contains("Monday"), "{problems:?}");
    }
}
