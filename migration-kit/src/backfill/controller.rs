//! The batch-size controller: how many pages (or rows) the next batch may take so that it
//! stays within the per-batch time budget.
//!
//! Two rules bound the next batch, and the smaller wins:
//!
//! - **time**: cut in proportion when the last batch was over budget (aiming at 70 % of it, at
//!   least halving), double when it took less than half;
//! - **rows**: a page range may hold up to `density` rows to update per page (the table's
//!   rows per page, or the densest range seen so far), and each row costs what the last dense
//!   batch measured per row. The next range is never larger than what 70 % of the budget pays
//!   for if every page in it is full of work. Before any dense batch has been measured the
//!   cap is the first batch's size.
//!
//! The time rule alone let a run of fast batches (pages already done by an interrupted run, a
//! sparse or bloated region, pages in cache) double a range up to 8,192 pages, and the first
//! dense range after it then held its rows' locks for seconds. The rows rule keeps the worst
//! case of the next batch within the budget's order of magnitude whatever the last batches
//! were.
//!
//! Below one page the controller takes rows of one page; below one row it stays at one row and
//! says the budget cannot be met ([`Controller::budget_missed`]).

use std::time::Duration;

/// Largest batch, in pages (64 MiB of 8 kB pages): beyond it a batch gains nothing.
pub const MAX_PAGES: u64 = 8_192;
/// The first batch takes at most this many pages, whatever the row hint: its cost is unknown.
pub const FIRST_PAGES_MAX: u64 = 8;
/// The share of the budget a batch is sized for (room for the writer's own work).
const AIM: f64 = 0.7;
/// A batch counts as dense (its time per row is a fair price of a full page range) when it
/// updated at least this share of the rows its pages can hold.
const DENSE: f64 = 0.5;

/// The walk's current cut: pages per batch, or rows of one page when one page is too much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every row still to do in this many pages.
    Pages(u64),
    /// At most this many rows (of one page, or of the sweep's list).
    Rows(u64),
}

/// What the controller saw in one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observed {
    /// The cut the batch ran with.
    pub cut: Cut,
    /// Rows it updated.
    pub rows: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Something worth a warning, returned by [`Controller::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// One page was over budget (first time only): the walk goes on a few rows at a time.
    PageOverBudget,
    /// One row was over budget (first time only): the budget cannot be met.
    RowOverBudget,
}

/// Sizes batches to the time budget; see the module documentation.
#[derive(Debug, Clone)]
pub struct Controller {
    budget: f64,
    density: f64,
    row_cost: Option<f64>,
    hint_rows: u64,
    cut: Cut,
    page_over_said: bool,
    budget_missed: bool,
}

impl Controller {
    /// A controller for a table of `density` rows per page (from the statistics), whose first
    /// batch should take about `hint_rows` rows (capped at [`FIRST_PAGES_MAX`] pages).
    pub fn new(budget: Duration, density: f64, hint_rows: u64) -> Self {
        let density = density.max(1.0);
        let first = ((hint_rows as f64) / density).ceil() as u64;
        Self {
            budget: budget.as_secs_f64(),
            density,
            row_cost: None,
            hint_rows: hint_rows.max(1),
            cut: Cut::Pages(first.clamp(1, FIRST_PAGES_MAX)),
            page_over_said: false,
            budget_missed: false,
        }
    }

    /// The cut of the next batch.
    pub fn cut(&self) -> Cut {
        self.cut
    }

    /// The next batch as a number of rows (what the sweep takes from its list).
    pub fn rows(&self) -> u64 {
        match self.cut {
            Cut::Pages(n) => ((n as f64) * self.density) as u64,
            Cut::Rows(r) => r,
        }
        .max(1)
    }

    /// Rows to update per page in the worst case seen so far.
    pub fn density(&self) -> f64 {
        self.density
    }

    /// True once a single row's update took longer than the budget.
    pub fn budget_missed(&self) -> bool {
        self.budget_missed
    }

    /// The largest page range the rows rule allows now.
    fn page_cap(&self) -> u64 {
        let rows = match self.row_cost {
            Some(cost) if cost > 0.0 => AIM * self.budget / cost,
            // Nothing measured yet: no larger than the first batch.
            _ => (self.hint_rows as f64).min(FIRST_PAGES_MAX as f64 * self.density),
        };
        ((rows / self.density) as u64).clamp(1, MAX_PAGES)
    }

    /// Learns from one batch and sets the next cut.
    pub fn observe(&mut self, batch: Observed) -> Option<Event> {
        let took = batch.elapsed.as_secs_f64();
        if let Cut::Pages(n) = batch.cut
            && n > 0
        {
            self.density = self.density.max(batch.rows as f64 / n as f64);
        }
        let capacity = match batch.cut {
            Cut::Pages(n) => n as f64 * self.density,
            Cut::Rows(r) => r as f64,
        };
        if batch.rows > 0 && batch.rows as f64 >= DENSE * capacity {
            self.row_cost = Some(took / batch.rows as f64);
        }
        let mut event = None;
        self.cut = if took > self.budget {
            let factor = if took > 0.0 {
                (AIM * self.budget / took).min(0.5)
            } else {
                0.5
            };
            match batch.cut {
                Cut::Pages(n) if n > 1 => Cut::Pages(((n as f64 * factor) as u64).max(1)),
                Cut::Pages(_) => {
                    if !self.page_over_said {
                        event = Some(Event::PageOverBudget);
                    }
                    self.page_over_said = true;
                    Cut::Rows(((self.density * factor) as u64).max(1))
                }
                Cut::Rows(r) if r > 1 => Cut::Rows(((r as f64 * factor) as u64).max(1)),
                Cut::Rows(_) => {
                    if !self.budget_missed {
                        event = Some(Event::RowOverBudget);
                    }
                    self.budget_missed = true;
                    Cut::Rows(1)
                }
            }
        } else if took < self.budget / 2.0 && batch.rows > 0 {
            match batch.cut {
                Cut::Pages(n) => Cut::Pages((n * 2).min(self.page_cap()).max(1)),
                Cut::Rows(r) if (r * 2) as f64 >= self.density => Cut::Pages(1),
                Cut::Rows(r) => Cut::Rows(r * 2),
            }
        } else if took < self.budget / 2.0 {
            // Nothing to do in these pages: no row cost learned, so growth stops at the cap.
            match batch.cut {
                Cut::Pages(n) => Cut::Pages((n * 2).min(self.page_cap()).max(1)),
                other => other,
            }
        } else {
            // Within budget: keep the cut, unless the rows rule now forbids it.
            match batch.cut {
                Cut::Pages(n) => Cut::Pages(n.min(self.page_cap()).max(1)),
                other => other,
            }
        };
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_millis(20);

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1e3)
    }

    /// Feeds the controller a table whose pages cost `page_ms(page)` each for `rows_per_page`
    /// rows (0 = already done), returning every batch's (pages, simulated ms).
    fn simulate(
        c: &mut Controller,
        pages: u64,
        rows_per_page: impl Fn(u64) -> u64,
        ms_per_row: f64,
    ) -> Vec<(Cut, f64)> {
        let mut out = vec![];
        let mut page = 0;
        while page < pages {
            let cut = c.cut();
            let Cut::Pages(n) = cut else {
                panic!("no page over budget in this simulation: {cut:?}")
            };
            let n = n.min(pages - page);
            let rows: u64 = (page..page + n).map(&rows_per_page).sum();
            // 0.3 ms per batch, 0.01 ms per page read, ms_per_row per row updated.
            let took = 0.3 + 0.01 * n as f64 + ms_per_row * rows as f64;
            c.observe(Observed {
                cut: Cut::Pages(n),
                rows,
                elapsed: ms(took),
            });
            out.push((Cut::Pages(n), took));
            page += n;
        }
        out
    }

    #[test]
    fn first_batch_follows_the_hint_capped_at_eight_pages() {
        assert_eq!(Controller::new(BUDGET, 50.0, 100).cut(), Cut::Pages(2));
        assert_eq!(Controller::new(BUDGET, 50.0, 5_000).cut(), Cut::Pages(8));
        assert_eq!(Controller::new(BUDGET, 0.0, 1).cut(), Cut::Pages(1));
    }

    #[test]
    fn uniform_table_settles_within_budget() {
        let mut c = Controller::new(BUDGET, 80.0, 5_000);
        let batches = simulate(&mut c, 20_000, |_| 80, 0.01);
        let worst = batches.iter().map(|b| b.1).fold(0.0, f64::max);
        assert!(worst <= 20.0, "worst simulated batch {worst} ms");
        let late: Vec<_> = batches[batches.len() / 2..].iter().map(|b| b.1).collect();
        assert!(
            late.iter().all(|t| *t >= 5.0),
            "batches grow to use the budget: {late:?}"
        );
    }

    #[test]
    fn a_run_of_done_pages_does_not_grow_the_range_past_the_rows_rule() {
        // The first 5,000 pages are done (an interrupted run), the rest full of work at 0.1 ms
        // per row: the time rule alone would have doubled to 8,192 pages (655,000 rows, 65 s).
        // Nothing is measured before the first dense range, so it is no larger than a first
        // batch (8 pages); after it the rows rule holds.
        let mut c = Controller::new(BUDGET, 80.0, 5_000);
        let batches = simulate(&mut c, 20_000, |p| if p < 5_000 { 0 } else { 80 }, 0.1);
        let first_dense = batches
            .iter()
            .scan(0, |page, b| {
                let at = *page;
                if let Cut::Pages(n) = b.0 {
                    *page += n;
                }
                Some((at, b))
            })
            .position(|(at, b)| at + pages_of(b.0) > 5_000)
            .unwrap_or(0);
        assert!(
            pages_of(batches[first_dense].0) <= FIRST_PAGES_MAX,
            "{:?}",
            batches[first_dense]
        );
        let worst_after = batches[first_dense + 1..]
            .iter()
            .map(|b| b.1)
            .fold(0.0, f64::max);
        assert!(worst_after <= 20.0, "then within budget: {worst_after} ms");
    }

    fn pages_of(cut: Cut) -> u64 {
        match cut {
            Cut::Pages(n) => n,
            Cut::Rows(_) => 0,
        }
    }

    #[test]
    fn done_pages_after_a_measured_dense_range_stay_capped() {
        // Dense first (the row cost is learned), then a long done stretch, then dense again.
        let mut c = Controller::new(BUDGET, 80.0, 5_000);
        let batches = simulate(
            &mut c,
            30_000,
            |p| if (2_000..20_000).contains(&p) { 0 } else { 80 },
            0.05,
        );
        // The first batch is sized before anything is measured (8 pages, 32 ms here).
        let worst = batches[1..].iter().map(|b| b.1).fold(0.0, f64::max);
        assert!(worst <= 20.0, "worst simulated batch {worst} ms");
        let largest = batches[1..]
            .iter()
            .map(|b| pages_of(b.0))
            .max()
            .unwrap_or(0);
        assert!(
            largest * 80 <= 400,
            "no range holds more rows than 70 % of the budget pays for: {largest} pages"
        );
    }

    #[test]
    fn a_denser_region_than_the_statistics_is_learned() {
        // Statistics say 20 rows per page; the table really holds 200 (narrow rows).
        let mut c = Controller::new(BUDGET, 20.0, 5_000);
        let batches = simulate(&mut c, 10_000, |_| 200, 0.01);
        assert!(c.density() >= 200.0);
        let worst = batches[1..].iter().map(|b| b.1).fold(0.0, f64::max);
        assert!(worst <= 20.0 * 2.0, "worst simulated batch {worst} ms");
    }

    #[test]
    fn over_budget_shrinks_to_rows_then_to_one_row_and_says_so() {
        let mut c = Controller::new(BUDGET, 50.0, 5_000);
        let mut events = vec![];
        for _ in 0..30 {
            let cut = c.cut();
            let rows = match cut {
                Cut::Pages(n) => n * 50,
                Cut::Rows(r) => r,
            };
            events.extend(c.observe(Observed {
                cut,
                rows,
                elapsed: ms(100.0),
            }));
        }
        assert_eq!(c.cut(), Cut::Rows(1));
        assert!(c.budget_missed());
        assert_eq!(events, vec![Event::PageOverBudget, Event::RowOverBudget]);
    }

    #[test]
    fn fast_rows_climb_back_to_pages() {
        // Rows of one page double, and become one page once they would cover it.
        for (rows, next) in [(10, Cut::Rows(20)), (30, Cut::Pages(1))] {
            let mut c = Controller::new(BUDGET, 50.0, 5_000);
            c.observe(Observed {
                cut: Cut::Rows(rows),
                rows,
                elapsed: ms(1.0),
            });
            assert_eq!(c.cut(), next, "after {rows} fast rows");
        }
    }

    #[test]
    fn a_generous_budget_doubles() {
        let mut c = Controller::new(Duration::from_secs(60), 50.0, 500);
        let mut sizes = vec![];
        for _ in 0..4 {
            let Cut::Pages(n) = c.cut() else { panic!() };
            sizes.push(n);
            c.observe(Observed {
                cut: Cut::Pages(n),
                rows: n * 50,
                elapsed: ms(n as f64),
            });
        }
        assert_eq!(sizes, vec![8, 16, 32, 64]);
    }
}
