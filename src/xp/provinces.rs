//! Province-level divisions (GB/T 2260, first two digits) and the names of
//! their environment departments, for the parties a decision notifies.
//! The four municipalities call theirs a bureau (局), the provinces and
//! autonomous regions a department (厅).

/// (code, name) of every province-level division.
const PROVINCES: &[(&str, &str)] = &[
    ("11", "北京市"),
    ("12", "天津市"),
    ("13", "河北省"),
    ("14", "山西省"),
    ("15", "内蒙古自治区"),
    ("21", "辽宁省"),
    ("22", "吉林省"),
    ("23", "黑龙江省"),
    ("31", "上海市"),
    ("32", "江苏省"),
    ("33", "浙江省"),
    ("34", "安徽省"),
    ("35", "福建省"),
    ("36", "江西省"),
    ("37", "山东省"),
    ("41", "河南省"),
    ("42", "湖北省"),
    ("43", "湖南省"),
    ("44", "广东省"),
    ("45", "广西壮族自治区"),
    ("46", "海南省"),
    ("50", "重庆市"),
    ("51", "四川省"),
    ("52", "贵州省"),
    ("53", "云南省"),
    ("54", "西藏自治区"),
    ("61", "陕西省"),
    ("62", "甘肃省"),
    ("63", "青海省"),
    ("64", "宁夏回族自治区"),
    ("65", "新疆维吾尔自治区"),
];

/// The province's name, when `code` is one.
pub fn name(code: &str) -> Option<&'static str> {
    PROVINCES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// Its environment department: 江西省生态环境厅, 上海市生态环境局.
pub fn environment_department(code: &str) -> Option<String> {
    let n = name(code)?;
    Some(if n.ends_with('市') {
        format!("{n}生态环境局")
    } else {
        format!("{n}生态环境厅")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departments_are_named_by_the_kind_of_division() {
        assert_eq!(environment_department("36").as_deref(), Some("江西省生态环境厅"));
        assert_eq!(environment_department("31").as_deref(), Some("上海市生态环境局"));
        assert_eq!(environment_department("99"), None);
    }
}
