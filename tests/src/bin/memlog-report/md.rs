//! Markdown tables.

/// A table: a header row, then `rows`; columns whose `right` is true are
/// right-aligned (numbers). A `|` in a cell is escaped.
pub fn table(head: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut m = String::new();
    m.push('|');
    for h in head {
        m.push_str(&format!(" {} |", cell(h)));
    }
    m.push_str("\n|");
    for i in 0..head.len() {
        m.push_str(if right.get(i).copied().unwrap_or(false) {
            " ---: |"
        } else {
            " --- |"
        });
    }
    m.push('\n');
    for r in rows {
        m.push('|');
        for i in 0..head.len() {
            m.push_str(&format!(" {} |", cell(r.get(i).map_or("", String::as_str))));
        }
        m.push('\n');
    }
    m
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", v);
    let (sign, digits) = s.split_at(usize::from(s.starts_with('-')));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// `x` with `prec` decimals, or `–` when it is not a number.
pub fn fixed(x: f64, prec: usize) -> String {
    if x.is_finite() {
        format!("{x:.prec$}")
    } else {
        "–".into()
    }
}

/// A ratio as `0.26×`.
pub fn ratio(a: f64, b: f64) -> String {
    let r = a / b;
    if r.is_finite() {
        if r >= 10.0 {
            format!("{r:.0}×")
        } else {
            format!("{r:.2}×")
        }
    } else {
        "–".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_numbers() {
        let t = table(
            &["writers", "rate | M/s"],
            &[true, true],
            &[vec!["1".into(), "16.5".into()], vec!["4".into()]],
        );
        assert_eq!(
            t,
            "| writers | rate \\| M/s |\n| ---: | ---: |\n| 1 | 16.5 |\n| 4 |  |\n"
        );
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-999.0), "-999");
        assert_eq!(thousands(f64::NAN), "–");
        assert_eq!(fixed(1.234, 2), "1.23");
        assert_eq!(ratio(1.0, 4.0), "0.25×");
        assert_eq!(ratio(100.0, 4.0), "25×");
        assert_eq!(ratio(1.0, 0.0), "–");
    }
}
