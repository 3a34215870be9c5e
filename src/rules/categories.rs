//! `categories.toml`: the textile taxonomy, the product nouns of each category and the
//! stuffing threshold, read by the title and category checks (handbook 3.1.2 (1), (2)).

use std::collections::HashMap;
use std::path::Path;

use rustc_hash::FxHashMap;
use serde::Deserialize;
use toml::Spanned;

use super::{line_of, parse_toml, read_rule_file, Problem};

/// One category of the taxonomy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The rule file's id (`fabric`, `garment` …), used in evidence.
    pub id: String,
    /// Categories of one family may talk about each other's goods (a fabric for shirts).
    pub family: String,
    /// Names a listing's category path uses for this category.
    pub names: Vec<String>,
    /// Indexes of the categories whose goods a listing filed here may be.
    pub holds: Vec<usize>,
}

/// The taxonomy, validated.
#[derive(Debug, Clone, Default)]
pub struct Taxonomy {
    pub categories: Vec<Category>,
    /// Each product noun (folded: lower case, simplified) with its category's index.
    pub nouns: Vec<(String, usize)>,
    /// Words containing a noun that name no product.
    pub ignore: Vec<String>,
    /// Words after which a clause names what goods are for, not what is sold.
    pub usage: Vec<String>,
    /// A title naming this many different products or more is stuffed.
    pub stuffing_threshold: usize,
    /// Each category name with the first category it names: read for every listing.
    category_of_name: FxHashMap<String, usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoriesFile {
    stuffing_threshold: Spanned<usize>,
    ignore: Vec<String>,
    usage: Vec<String>,
    category: Vec<CategoryDef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryDef {
    id: Spanned<String>,
    family: String,
    names: Vec<String>,
    holds: Vec<Spanned<String>>,
    nouns: Vec<Spanned<String>>,
}

impl Taxonomy {
    pub(super) fn load(dir: &Path, problems: &mut Vec<Problem>) -> Taxonomy {
        let path = dir.join("categories.toml");
        let Some(text) = read_rule_file(&path, problems) else {
            return Taxonomy::default();
        };
        let Some(file): Option<CategoriesFile> = parse_toml(&path, &text, problems) else {
            return Taxonomy::default();
        };
        let mut problem = |span: std::ops::Range<usize>, message: String| {
            problems.push(Problem {
                file: path.clone(),
                line: line_of(&text, span.start),
                message,
            });
        };

        let threshold = *file.stuffing_threshold.get_ref();
        if threshold < 2 {
            problem(
                file.stuffing_threshold.span(),
                "stuffing_threshold must be at least 2: one product is no stuffing".to_owned(),
            );
        }

        let index: HashMap<String, usize> = file
            .category
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.get_ref().clone(), i))
            .collect();
        let mut categories = Vec::with_capacity(file.category.len());
        let mut nouns = Vec::new();
        let mut noun_owner: HashMap<String, String> = HashMap::new();
        for (i, def) in file.category.iter().enumerate() {
            if index.get(def.id.get_ref()) != Some(&i) {
                problem(
                    def.id.span(),
                    format!("category `{}` is defined twice", def.id.get_ref()),
                );
            }
            let mut holds = Vec::new();
            for held in &def.holds {
                match index.get(held.get_ref()) {
                    Some(&h) => holds.push(h),
                    None => problem(
                        held.span(),
                        format!("`holds` names unknown category `{}`", held.get_ref()),
                    ),
                }
            }
            for noun in &def.nouns {
                let value = noun.get_ref();
                if value.trim().is_empty() || value.chars().any(|c| c.is_ascii_uppercase()) {
                    problem(
                        noun.span(),
                        format!("noun `{value}` must be a non-empty lower-case word"),
                    );
                    continue;
                }
                if let Some(owner) = noun_owner.insert(value.clone(), def.id.get_ref().clone()) {
                    problem(
                        noun.span(),
                        format!("noun `{value}` is also a noun of `{owner}`"),
                    );
                    continue;
                }
                nouns.push((value.clone(), i));
            }
            categories.push(Category {
                id: def.id.get_ref().clone(),
                family: def.family.clone(),
                names: def.names.clone(),
                holds,
            });
        }
        let mut category_of_name = FxHashMap::default();
        for (i, category) in categories.iter().enumerate() {
            for name in &category.names {
                category_of_name.entry(name.clone()).or_insert(i);
            }
        }
        Taxonomy {
            categories,
            category_of_name,
            nouns,
            ignore: file.ignore,
            usage: file.usage,
            stuffing_threshold: threshold,
        }
    }

    /// The category a listing's category path is filed under: the first level that names
    /// one. A path of names outside the taxonomy (crafts, security goods) has none.
    pub fn category_of_path(&self, path: &[impl AsRef<str>]) -> Option<usize> {
        path.iter()
            .find_map(|level| self.category_of_name.get(level.as_ref().trim()).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (Taxonomy, Vec<Problem>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("categories.toml"), text).unwrap();
        let mut problems = Vec::new();
        (Taxonomy::load(dir.path(), &mut problems), problems)
    }

    #[test]
    fn unknown_categories_and_nouns_in_two_categories_are_reported_with_their_lines() {
        let (_, problems) = load(
            "stuffing_threshold = 4\nignore = []\nusage = []\n\
             [[category]]\nid = \"a\"\nfamily = \"f\"\nnames = [\"甲\"]\nholds = [\"a\", \"z\"]\nnouns = [\"布\"]\n\
             [[category]]\nid = \"b\"\nfamily = \"f\"\nnames = []\nholds = []\nnouns = [\"布\"]\n",
        );
        let lines: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.message.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (8, "`holds` names unknown category `z`"),
                (15, "noun `布` is also a noun of `a`"),
            ]
        );
    }

    #[test]
    fn the_path_maps_by_its_first_known_level() {
        let (taxonomy, problems) = load(
            "stuffing_threshold = 4\nignore = []\nusage = []\n\
             [[category]]\nid = \"a\"\nfamily = \"f\"\nnames = [\"面料\"]\nholds = [\"a\"]\nnouns = []\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(taxonomy.category_of_path(&path(&["其他", "面料"])), Some(0));
        assert_eq!(taxonomy.category_of_path(&path(&["工艺品"])), None);
        assert_eq!(taxonomy.category_of_path(&[] as &[&str]), None);
    }
}
