-- The data stages of relcap (ingest, clean, score, link) written as one DuckDB SQL script over
-- the same Parquet input, as the baseline of `relcap bench` (docs/performance.md says what it
-- does and does not do compared with relcap's stages). Run by benches/data_stages_duckdb.py,
-- which replaces ${DATA} (the study's input folder), ${OUT} (an empty output folder) and
-- ${KEY} (the pseudonym key) and executes the statements in order.
--
-- The instrument and scoring settings are the built-in defaults (docs/methods.md), those of
-- the national study that `relcap bench` times: items 1..5, 9 = dont_know, `frequent` through
-- its value map, no reverse-coded items, tie score from 5 of the 7 dimensions, SRM and citizen
-- quality from half their items (rounded up).

-- Each stage reads the Parquet the stage before wrote (as relcap's stages do), within a
-- memory limit near relcap's peak, spilling to a temporary folder beyond it.
SET preserve_insertion_order = false;
SET threads = 2;
SET memory_limit = '3GB';
SET temp_directory = '${OUT}/.duckdb_tmp';

-- The instrument: every item and its kind; the value map; the missing codes.
CREATE TEMP TABLE items (item VARCHAR, kind VARCHAR, subscale VARCHAR);
INSERT INTO items VALUES
  ('frequent', 'tie', 'communication'), ('timely', 'tie', 'communication'),
  ('accurate', 'tie', 'communication'), ('problem_solving', 'tie', 'communication'),
  ('shared_goals', 'tie', 'relationship'), ('shared_knowledge', 'tie', 'relationship'),
  ('mutual_respect', 'tie', 'relationship'), ('relevance', 'tie', NULL),
  ('srm_1', 'person', 'srm'), ('srm_2', 'person', 'srm'), ('srm_3', 'person', 'srm'),
  ('srm_4', 'person', 'srm'), ('srm_5', 'person', 'srm'), ('srm_6', 'person', 'srm'),
  ('wellbeing', 'person', NULL), ('manager_satisfaction', 'person', NULL),
  ('cq_1', 'citizen', NULL), ('cq_2', 'citizen', NULL), ('cq_3', 'citizen', NULL),
  ('cq_4', 'citizen', NULL), ('cq_5', 'citizen', NULL);
CREATE TEMP TABLE value_map (item VARCHAR, code DOUBLE, score DOUBLE);
INSERT INTO value_map VALUES
  ('frequent', 1, 1), ('frequent', 2, 3), ('frequent', 3, 5), ('frequent', 4, 4),
  ('frequent', 5, 2);
CREATE TEMP TABLE missing_codes (code DOUBLE, reason VARCHAR);
INSERT INTO missing_codes VALUES (9, 'dont_know');

----------------------------------------------------------------------------------------------
-- ingest: read, type (trim, empty = missing, required cells, integers, numbers, booleans, the
-- arm), pseudonymise person ids (a keyed SHA-256 of each distinct id), provenance.
----------------------------------------------------------------------------------------------

CREATE TEMP VIEW ing_units AS
SELECT 'units.parquet' AS source, file_row_number + 2 AS line,
       NULLIF(trim(municipality::VARCHAR), '') AS municipality,
       NULLIF(trim(unit_id::VARCHAR), '') AS unit_id,
       NULLIF(trim(work_group::VARCHAR), '') AS work_group,
       NULLIF(trim(manager_id::VARCHAR), '') AS manager_raw,
       headcount::VARCHAR AS headcount_text,
       TRY_CAST(headcount AS BIGINT) AS headcount
FROM read_parquet('${DATA}/units.parquet', file_row_number = true);

CREATE TEMP VIEW ing_intervention AS
SELECT 'intervention.parquet' AS source, file_row_number + 2 AS line,
       NULLIF(trim(unit_id::VARCHAR), '') AS unit_id,
       NULLIF(trim(arm::VARCHAR), '') AS arm_text,
       CASE lower(trim(arm::VARCHAR)) WHEN 'intervention' THEN 'intervention'
            WHEN 'control' THEN 'control' END AS arm,
       after_wave::VARCHAR AS after_wave_text,
       TRY_CAST(after_wave AS BIGINT) AS after_wave
FROM read_parquet('${DATA}/intervention.parquet', file_row_number = true);

CREATE TEMP VIEW ing_employee AS
SELECT 'employee_responses.parquet' AS source, file_row_number + 2 AS line,
       wave::VARCHAR AS wave_text, TRY_CAST(wave AS BIGINT) AS wave,
       NULLIF(trim(respondent_id::VARCHAR), '') AS respondent_raw,
       NULLIF(trim(municipality::VARCHAR), '') AS municipality,
       NULLIF(trim(unit_id::VARCHAR), '') AS unit_id,
       NULLIF(trim(target_group::VARCHAR), '') AS target_group,
       NULLIF(trim(item::VARCHAR), '') AS item,
       value::VARCHAR AS value_text, TRY_CAST(value AS DOUBLE) AS value
FROM read_parquet('${DATA}/employee_responses.parquet', file_row_number = true);

CREATE TEMP VIEW ing_citizen AS
SELECT 'citizen_responses.parquet' AS source, file_row_number + 2 AS line,
       wave::VARCHAR AS wave_text, TRY_CAST(wave AS BIGINT) AS wave,
       NULLIF(trim(citizen_id::VARCHAR), '') AS citizen_raw,
       NULLIF(trim(municipality::VARCHAR), '') AS municipality,
       NULLIF(trim(case_id::VARCHAR), '') AS case_raw,
       NULLIF(trim(item::VARCHAR), '') AS item,
       value::VARCHAR AS value_text, TRY_CAST(value AS DOUBLE) AS value
FROM read_parquet('${DATA}/citizen_responses.parquet', file_row_number = true);

CREATE TEMP VIEW ing_involvement AS
SELECT 'case_involvement.parquet' AS source, file_row_number + 2 AS line,
       wave::VARCHAR AS wave_text, TRY_CAST(wave AS BIGINT) AS wave,
       NULLIF(trim(case_id::VARCHAR), '') AS case_raw,
       NULLIF(trim(unit_id::VARCHAR), '') AS unit_id,
       lead::VARCHAR AS lead_text,
       CASE lower(trim(lead::VARCHAR)) WHEN 'true' THEN true WHEN 'yes' THEN true
            WHEN '1' THEN true WHEN 'false' THEN false WHEN 'no' THEN false
            WHEN '0' THEN false END AS lead
FROM read_parquet('${DATA}/case_involvement.parquet', file_row_number = true);

-- One pseudonym per distinct raw id (relcap hashes each distinct id once, too).
CREATE TEMP TABLE pseudonyms AS
SELECT raw, sha256('${KEY}' || raw) AS pseudonym FROM (
  SELECT respondent_raw AS raw FROM ing_employee UNION
  SELECT citizen_raw FROM ing_citizen UNION
  SELECT case_raw FROM ing_citizen UNION
  SELECT case_raw FROM ing_involvement UNION
  SELECT manager_raw FROM ing_units) WHERE raw IS NOT NULL;

-- The cells that cannot be typed, one quarantine row each.
CREATE TEMP VIEW ing_quarantine AS
SELECT 'units' AS "table", source, line, c AS "column", v AS value, r AS reason FROM (
  SELECT source, line, 'municipality' c, NULL v, 'missing_required' r FROM ing_units WHERE municipality IS NULL
  UNION ALL SELECT source, line, 'unit_id', NULL, 'missing_required' FROM ing_units WHERE unit_id IS NULL
  UNION ALL SELECT source, line, 'work_group', NULL, 'missing_required' FROM ing_units WHERE work_group IS NULL
  UNION ALL SELECT source, line, 'headcount', headcount_text, 'not_an_integer' FROM ing_units WHERE headcount_text IS NOT NULL AND headcount IS NULL
  UNION ALL SELECT source, line, 'headcount', headcount_text, 'invalid_value' FROM ing_units WHERE headcount < 0)
UNION ALL
SELECT 'intervention', source, line, c, v, r FROM (
  SELECT source, line, 'unit_id' c, NULL v, 'missing_required' r FROM ing_intervention WHERE unit_id IS NULL
  UNION ALL SELECT source, line, 'arm', arm_text, CASE WHEN arm_text IS NULL THEN 'missing_required' ELSE 'invalid_value' END FROM ing_intervention WHERE arm IS NULL
  UNION ALL SELECT source, line, 'after_wave', after_wave_text, CASE WHEN after_wave_text IS NULL THEN 'missing_required' ELSE 'not_an_integer' END FROM ing_intervention WHERE after_wave IS NULL)
UNION ALL
SELECT 'employee_responses', source, line, c, v, r FROM (
  SELECT source, line, 'wave' c, wave_text v, CASE WHEN wave_text IS NULL THEN 'missing_required' ELSE 'not_an_integer' END r FROM ing_employee WHERE wave IS NULL
  UNION ALL SELECT source, line, 'respondent_id', NULL, 'missing_required' FROM ing_employee WHERE respondent_raw IS NULL
  UNION ALL SELECT source, line, 'municipality', NULL, 'missing_required' FROM ing_employee WHERE municipality IS NULL
  UNION ALL SELECT source, line, 'unit_id', NULL, 'missing_required' FROM ing_employee WHERE unit_id IS NULL
  UNION ALL SELECT source, line, 'item', NULL, 'missing_required' FROM ing_employee WHERE item IS NULL
  UNION ALL SELECT source, line, 'value', value_text, 'not_a_number' FROM ing_employee WHERE value_text IS NOT NULL AND value IS NULL)
UNION ALL
SELECT 'citizen_responses', source, line, c, v, r FROM (
  SELECT source, line, 'wave' c, wave_text v, CASE WHEN wave_text IS NULL THEN 'missing_required' ELSE 'not_an_integer' END r FROM ing_citizen WHERE wave IS NULL
  UNION ALL SELECT source, line, 'citizen_id', NULL, 'missing_required' FROM ing_citizen WHERE citizen_raw IS NULL
  UNION ALL SELECT source, line, 'municipality', NULL, 'missing_required' FROM ing_citizen WHERE municipality IS NULL
  UNION ALL SELECT source, line, 'case_id', NULL, 'missing_required' FROM ing_citizen WHERE case_raw IS NULL
  UNION ALL SELECT source, line, 'item', NULL, 'missing_required' FROM ing_citizen WHERE item IS NULL
  UNION ALL SELECT source, line, 'value', value_text, 'not_a_number' FROM ing_citizen WHERE value_text IS NOT NULL AND value IS NULL)
UNION ALL
SELECT 'case_involvement', source, line, c, v, r FROM (
  SELECT source, line, 'wave' c, wave_text v, CASE WHEN wave_text IS NULL THEN 'missing_required' ELSE 'not_an_integer' END r FROM ing_involvement WHERE wave IS NULL
  UNION ALL SELECT source, line, 'case_id', NULL, 'missing_required' FROM ing_involvement WHERE case_raw IS NULL
  UNION ALL SELECT source, line, 'unit_id', NULL, 'missing_required' FROM ing_involvement WHERE unit_id IS NULL
  UNION ALL SELECT source, line, 'lead', lead_text, CASE WHEN lead_text IS NULL THEN 'missing_required' ELSE 'not_a_boolean' END FROM ing_involvement WHERE lead IS NULL);

-- The typed tables: rows without a bad cell, person ids pseudonymised.
CREATE TEMP VIEW t_units AS
SELECT u.municipality, u.unit_id, u.work_group, p.pseudonym AS manager_id, u.headcount, u.source, u.line
FROM ing_units u LEFT JOIN pseudonyms p ON p.raw = u.manager_raw
WHERE u.municipality IS NOT NULL AND u.unit_id IS NOT NULL AND u.work_group IS NOT NULL
  AND (u.headcount_text IS NULL OR u.headcount >= 0);
CREATE TEMP VIEW t_intervention AS
SELECT unit_id, arm, after_wave, source, line FROM ing_intervention
WHERE unit_id IS NOT NULL AND arm IS NOT NULL AND after_wave IS NOT NULL;
CREATE TEMP VIEW t_employee AS
SELECT e.wave, p.pseudonym AS respondent_id, e.municipality, e.unit_id, e.target_group, e.item,
       e.value, e.source, e.line
FROM ing_employee e JOIN pseudonyms p ON p.raw = e.respondent_raw
WHERE e.wave IS NOT NULL AND e.municipality IS NOT NULL AND e.unit_id IS NOT NULL
  AND e.item IS NOT NULL AND (e.value_text IS NULL OR e.value IS NOT NULL);
CREATE TEMP VIEW t_citizen AS
SELECT c.wave, pc.pseudonym AS citizen_id, c.municipality, pk.pseudonym AS case_id, c.item,
       c.value, c.source, c.line
FROM ing_citizen c JOIN pseudonyms pc ON pc.raw = c.citizen_raw
JOIN pseudonyms pk ON pk.raw = c.case_raw
WHERE c.wave IS NOT NULL AND c.municipality IS NOT NULL AND c.item IS NOT NULL
  AND (c.value_text IS NULL OR c.value IS NOT NULL);
CREATE TEMP VIEW t_involvement AS
SELECT i.wave, p.pseudonym AS case_id, i.unit_id, i.lead, i.source, i.line
FROM ing_involvement i JOIN pseudonyms p ON p.raw = i.case_raw
WHERE i.wave IS NOT NULL AND i.unit_id IS NOT NULL AND i.lead IS NOT NULL;

COPY (SELECT * FROM t_units ORDER BY source, line) TO '${OUT}/ingest/units.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM t_intervention ORDER BY source, line) TO '${OUT}/ingest/intervention.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM t_employee ORDER BY source, line) TO '${OUT}/ingest/employee_responses.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM t_citizen ORDER BY source, line) TO '${OUT}/ingest/citizen_responses.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM t_involvement ORDER BY source, line) TO '${OUT}/ingest/case_involvement.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM ing_quarantine ORDER BY "table", source, line, "column", reason) TO '${OUT}/ingest/quarantine.parquet' (FORMAT parquet, COMPRESSION zstd);

----------------------------------------------------------------------------------------------
-- clean: exact copies collapsed (the first by source and line kept), conflicting keys
-- quarantined, items, references and values checked, missing codes, value map, scale.
----------------------------------------------------------------------------------------------

CREATE TEMP VIEW i_units AS SELECT * FROM read_parquet('${OUT}/ingest/units.parquet');
CREATE TEMP VIEW i_intervention AS SELECT * FROM read_parquet('${OUT}/ingest/intervention.parquet');
CREATE TEMP VIEW i_employee AS SELECT * FROM read_parquet('${OUT}/ingest/employee_responses.parquet');
CREATE TEMP VIEW i_citizen AS SELECT * FROM read_parquet('${OUT}/ingest/citizen_responses.parquet');
CREATE TEMP VIEW i_involvement AS SELECT * FROM read_parquet('${OUT}/ingest/case_involvement.parquet');

-- Units: conflicts on unit_id.
CREATE TEMP TABLE d_units AS
SELECT *, count(*) OVER (PARTITION BY unit_id) AS n_key FROM (
  SELECT * FROM i_units QUALIFY row_number() OVER (
    PARTITION BY municipality, unit_id, work_group, manager_id, headcount ORDER BY source, line) = 1);
CREATE TEMP TABLE c_units AS SELECT * EXCLUDE (n_key) FROM d_units WHERE n_key = 1;
CREATE TEMP TABLE c_groups AS SELECT DISTINCT work_group FROM c_units;
CREATE TEMP TABLE c_municipalities AS SELECT DISTINCT municipality FROM c_units;

CREATE TEMP TABLE d_intervention AS
SELECT d.*, u.unit_id IS NOT NULL AS unit_known FROM (
  SELECT *, count(*) OVER (PARTITION BY unit_id) AS n_key FROM (
    SELECT * FROM i_intervention QUALIFY row_number() OVER (
      PARTITION BY unit_id, arm, after_wave ORDER BY source, line) = 1)) d
LEFT JOIN c_units u USING (unit_id);

-- Employee answers: the rules of each row (a flag per rule) and the scored value.
CREATE TEMP VIEW d_employee AS
SELECT d.*, it.kind, u.municipality AS unit_municipality, u.work_group,
       u.unit_id IS NOT NULL AS unit_known, g.work_group IS NOT NULL AS group_known,
       mc.reason AS missing_code,
       CASE WHEN d.value IS NULL OR mc.reason IS NOT NULL THEN NULL
            WHEN vm.item IS NOT NULL THEN vm.score
            WHEN EXISTS (SELECT 1 FROM value_map m WHERE m.item = d.item) THEN NULL
            WHEN d.value BETWEEN 1 AND 5 AND d.value = floor(d.value) THEN d.value END AS score
FROM (
  SELECT *, count(*) OVER (PARTITION BY wave, respondent_id, target_group, item) AS n_key FROM (
    SELECT * FROM i_employee QUALIFY row_number() OVER (
      PARTITION BY wave, respondent_id, municipality, unit_id, target_group, item, value
      ORDER BY source, line) = 1)) d
LEFT JOIN items it ON it.item = d.item
LEFT JOIN c_units u ON u.unit_id = d.unit_id
LEFT JOIN c_groups g ON g.work_group = d.target_group
LEFT JOIN missing_codes mc ON mc.code = d.value
LEFT JOIN value_map vm ON vm.item = d.item AND vm.code = d.value;

CREATE TEMP TABLE r_employee AS
SELECT *,
  n_key > 1 AS r_conflict,
  kind IS NULL OR kind = 'citizen' AS r_item,
  kind = 'tie' AND target_group IS NULL AS r_target_missing,
  kind = 'person' AND target_group IS NOT NULL AS r_target_unexpected,
  NOT unit_known AS r_unit,
  unit_known AND municipality <> unit_municipality AS r_mismatch,
  target_group IS NOT NULL AND NOT group_known AS r_group,
  value IS NOT NULL AND missing_code IS NULL AND score IS NULL AS r_range
FROM d_employee;

CREATE TEMP VIEW d_citizen AS
SELECT d.*, it.kind, m.municipality IS NOT NULL AS municipality_known, mc.reason AS missing_code,
       CASE WHEN d.value IS NULL OR mc.reason IS NOT NULL THEN NULL
            WHEN d.value BETWEEN 1 AND 5 AND d.value = floor(d.value) THEN d.value END AS score
FROM (
  SELECT *, count(*) OVER (PARTITION BY wave, citizen_id, item) AS n_key FROM (
    SELECT * FROM i_citizen QUALIFY row_number() OVER (
      PARTITION BY wave, citizen_id, municipality, case_id, item, value ORDER BY source, line) = 1)) d
LEFT JOIN items it ON it.item = d.item
LEFT JOIN c_municipalities m ON m.municipality = d.municipality
LEFT JOIN missing_codes mc ON mc.code = d.value;
CREATE TEMP TABLE r_citizen AS
SELECT *, n_key > 1 AS r_conflict, kind IS DISTINCT FROM 'citizen' AS r_item,
  NOT municipality_known AS r_municipality,
  value IS NOT NULL AND missing_code IS NULL AND score IS NULL AS r_range
FROM d_citizen;

CREATE TEMP TABLE d_involvement AS
SELECT d.*, u.municipality, u.work_group, u.unit_id IS NOT NULL AS unit_known FROM (
  SELECT *, count(*) OVER (PARTITION BY wave, case_id, unit_id) AS n_key FROM (
    SELECT * FROM i_involvement QUALIFY row_number() OVER (
      PARTITION BY wave, case_id, unit_id, lead ORDER BY source, line) = 1)) d
LEFT JOIN c_units u USING (unit_id);

-- One quarantine row per broken rule.
CREATE TEMP VIEW cl_quarantine AS
SELECT 'units' AS "table", source, line, NULL AS "column", n_key || ' different rows share the key (unit_id)' AS value, 'duplicate_conflict' AS reason FROM d_units WHERE n_key > 1
UNION ALL SELECT 'intervention', source, line, NULL, n_key || ' different rows share the key (unit_id)', 'duplicate_conflict' FROM d_intervention WHERE n_key > 1
UNION ALL SELECT 'intervention', source, line, 'unit_id', unit_id, 'unknown_reference' FROM d_intervention WHERE NOT unit_known
UNION ALL SELECT 'employee_responses', source, line, NULL, n_key || ' different rows share the key (wave, respondent_id, target_group, item)', 'duplicate_conflict' FROM r_employee WHERE r_conflict
UNION ALL SELECT 'employee_responses', source, line, 'item', item, 'unknown_item' FROM r_employee WHERE r_item
UNION ALL SELECT 'employee_responses', source, line, 'target_group', target_group, 'missing_required' FROM r_employee WHERE r_target_missing
UNION ALL SELECT 'employee_responses', source, line, 'target_group', target_group, 'unexpected_target_group' FROM r_employee WHERE r_target_unexpected
UNION ALL SELECT 'employee_responses', source, line, 'unit_id', unit_id, 'unknown_reference' FROM r_employee WHERE r_unit
UNION ALL SELECT 'employee_responses', source, line, 'municipality', municipality || ' (the unit is in ' || unit_municipality || ')', 'municipality_mismatch' FROM r_employee WHERE r_mismatch
UNION ALL SELECT 'employee_responses', source, line, 'target_group', target_group, 'unknown_reference' FROM r_employee WHERE r_group
UNION ALL SELECT 'employee_responses', source, line, 'value', value::VARCHAR, 'out_of_range' FROM r_employee WHERE r_range
UNION ALL SELECT 'citizen_responses', source, line, NULL, n_key || ' different rows share the key (wave, citizen_id, item)', 'duplicate_conflict' FROM r_citizen WHERE r_conflict
UNION ALL SELECT 'citizen_responses', source, line, 'item', item, 'unknown_item' FROM r_citizen WHERE r_item
UNION ALL SELECT 'citizen_responses', source, line, 'municipality', municipality, 'unknown_reference' FROM r_citizen WHERE r_municipality
UNION ALL SELECT 'citizen_responses', source, line, 'value', value::VARCHAR, 'out_of_range' FROM r_citizen WHERE r_range
UNION ALL SELECT 'case_involvement', source, line, NULL, n_key || ' different rows share the key (wave, case_id, unit_id)', 'duplicate_conflict' FROM d_involvement WHERE n_key > 1
UNION ALL SELECT 'case_involvement', source, line, 'unit_id', unit_id, 'unknown_reference' FROM d_involvement WHERE NOT unit_known;

-- The clean tables: the rows that break no rule, in key order.
CREATE TEMP VIEW c_employee AS
SELECT wave, municipality, unit_id, work_group, respondent_id, target_group, item, kind AS item_kind,
       score AS value,
       CASE WHEN value IS NULL THEN 'empty' ELSE missing_code END AS missing_reason, source, line
FROM r_employee
WHERE NOT (r_conflict OR r_item OR r_target_missing OR r_target_unexpected OR r_unit
           OR coalesce(r_mismatch, false) OR r_group OR r_range);
CREATE TEMP VIEW c_citizen AS
SELECT wave, municipality, citizen_id, case_id, item, score AS value,
       CASE WHEN value IS NULL THEN 'empty' ELSE missing_code END AS missing_reason, source, line
FROM r_citizen WHERE NOT (r_conflict OR r_item OR r_municipality OR r_range);
CREATE TEMP VIEW c_involvement AS
SELECT wave, case_id, unit_id, lead, municipality, work_group, source, line
FROM d_involvement WHERE n_key = 1 AND unit_known;
CREATE TEMP VIEW c_intervention AS
SELECT unit_id, arm, after_wave FROM d_intervention WHERE n_key = 1 AND unit_known;

COPY (SELECT municipality, unit_id, work_group, manager_id, headcount FROM c_units ORDER BY unit_id) TO '${OUT}/clean/units.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM c_intervention ORDER BY unit_id) TO '${OUT}/clean/intervention.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM c_employee ORDER BY wave, respondent_id NULLS FIRST, target_group NULLS FIRST, item) TO '${OUT}/clean/employee_responses.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM c_citizen ORDER BY wave, citizen_id, item) TO '${OUT}/clean/citizen_responses.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM c_involvement ORDER BY wave, case_id, unit_id) TO '${OUT}/clean/case_involvement.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM cl_quarantine ORDER BY "table", source, line, "column", reason) TO '${OUT}/clean/quarantine.parquet' (FORMAT parquet, COMPRESSION zstd);

----------------------------------------------------------------------------------------------
-- score: ties, respondents (with leave-one-out SRM), units, dyads, citizens.
----------------------------------------------------------------------------------------------

DROP TABLE r_employee; DROP TABLE r_citizen; DROP TABLE d_involvement;
CREATE TEMP VIEW e_clean AS SELECT * FROM read_parquet('${OUT}/clean/employee_responses.parquet');
CREATE TEMP VIEW z_clean AS SELECT * FROM read_parquet('${OUT}/clean/citizen_responses.parquet');
CREATE TEMP VIEW u_clean AS SELECT * FROM read_parquet('${OUT}/clean/units.parquet');

CREATE TEMP TABLE s_ties AS
SELECT wave, municipality, unit_id, work_group, respondent_id, target_group,
       target_group = work_group AS within_group,
       count(value) FILTER (WHERE subscale IS NOT NULL) AS n_items,
       CASE WHEN count(value) FILTER (WHERE subscale IS NOT NULL) >= 5
            THEN avg(value) FILTER (WHERE subscale IS NOT NULL) END AS rc,
       CASE WHEN count(value) FILTER (WHERE subscale = 'communication') = 4
            THEN avg(value) FILTER (WHERE subscale = 'communication') END AS rc_communication,
       count(value) FILTER (WHERE subscale = 'communication') AS rc_communication_n,
       CASE WHEN count(value) FILTER (WHERE subscale = 'relationship') = 3
            THEN avg(value) FILTER (WHERE subscale = 'relationship') END AS rc_relationship,
       count(value) FILTER (WHERE subscale = 'relationship') AS rc_relationship_n,
       max(value) FILTER (WHERE e.item = 'relevance') AS relevance,
       max(value) FILTER (WHERE e.item = 'frequent') AS frequent,
       max(value) FILTER (WHERE e.item = 'timely') AS timely,
       max(value) FILTER (WHERE e.item = 'accurate') AS accurate,
       max(value) FILTER (WHERE e.item = 'problem_solving') AS problem_solving,
       max(value) FILTER (WHERE e.item = 'shared_goals') AS shared_goals,
       max(value) FILTER (WHERE e.item = 'shared_knowledge') AS shared_knowledge,
       max(value) FILTER (WHERE e.item = 'mutual_respect') AS mutual_respect
FROM e_clean e JOIN items USING (item)
WHERE item_kind = 'tie'
GROUP BY ALL;

CREATE TEMP VIEW s_person AS
SELECT wave, municipality, unit_id, work_group, respondent_id,
       count(value) FILTER (WHERE subscale = 'srm') AS srm_n_items,
       CASE WHEN count(value) FILTER (WHERE subscale = 'srm') >= 3
            THEN avg(value) FILTER (WHERE subscale = 'srm') END AS srm,
       max(value) FILTER (WHERE e.item = 'srm_1') AS srm_1,
       max(value) FILTER (WHERE e.item = 'srm_2') AS srm_2,
       max(value) FILTER (WHERE e.item = 'srm_3') AS srm_3,
       max(value) FILTER (WHERE e.item = 'srm_4') AS srm_4,
       max(value) FILTER (WHERE e.item = 'srm_5') AS srm_5,
       max(value) FILTER (WHERE e.item = 'srm_6') AS srm_6,
       max(value) FILTER (WHERE e.item = 'wellbeing') AS wellbeing,
       max(value) FILTER (WHERE e.item = 'manager_satisfaction') AS manager_satisfaction
FROM e_clean e JOIN items USING (item)
WHERE item_kind = 'person'
GROUP BY ALL;

CREATE TEMP TABLE s_respondents AS
WITH tie AS (
  SELECT wave, municipality, unit_id, work_group, respondent_id,
         avg(rc) FILTER (WHERE NOT within_group) AS rcap,
         count(rc) FILTER (WHERE NOT within_group) AS n_ties,
         count(rc) FILTER (WHERE within_group) AS n_ties_within,
         count(*) FILTER (WHERE rc IS NULL) AS n_ties_unscored
  FROM s_ties GROUP BY ALL),
r AS (
  SELECT wave, municipality, unit_id, work_group, respondent_id, t.rcap,
         coalesce(t.n_ties, 0) AS n_ties, coalesce(t.n_ties_within, 0) AS n_ties_within,
         coalesce(t.n_ties_unscored, 0) AS n_ties_unscored, p.srm,
         coalesce(p.srm_n_items, 0) AS srm_n_items,
         p.srm_1, p.srm_2, p.srm_3, p.srm_4, p.srm_5, p.srm_6, p.wellbeing, p.manager_satisfaction
  FROM tie t FULL JOIN s_person p USING (wave, municipality, unit_id, work_group, respondent_id))
SELECT *,
  CASE WHEN srm IS NULL THEN sum(srm) OVER u / nullif(count(srm) OVER u, 0)
       ELSE (sum(srm) OVER u - srm) / nullif(count(srm) OVER u - 1, 0) END AS srm_others,
  CASE WHEN srm IS NULL THEN count(srm) OVER u ELSE count(srm) OVER u - 1 END AS srm_others_n
FROM r WINDOW u AS (PARTITION BY wave, unit_id);

CREATE TEMP VIEW s_units AS
SELECT r.wave, r.municipality, r.unit_id, r.work_group, any_value(cu.headcount) AS headcount,
       count(*) AS n_respondents, avg(rcap) AS rcap, count(rcap) AS n_rcap,
       stddev_samp(rcap) AS rcap_sd, avg(srm) AS srm, count(srm) AS n_srm,
       stddev_samp(srm) AS srm_sd
FROM s_respondents r LEFT JOIN u_clean cu USING (unit_id)
GROUP BY r.wave, r.municipality, r.unit_id, r.work_group;

CREATE TEMP VIEW s_dyads AS
SELECT wave, municipality, work_group, target_group, work_group = target_group AS within_group,
       count(*) AS n_ties, count(rc) AS n_raters, avg(rc) AS mean, stddev_samp(rc) AS sd,
       avg(relevance) AS relevance_mean, count(relevance) AS relevance_n,
       avg(frequent) FILTER (WHERE rc IS NOT NULL) AS mean_frequent,
       avg(timely) FILTER (WHERE rc IS NOT NULL) AS mean_timely,
       avg(accurate) FILTER (WHERE rc IS NOT NULL) AS mean_accurate,
       avg(problem_solving) FILTER (WHERE rc IS NOT NULL) AS mean_problem_solving,
       avg(shared_goals) FILTER (WHERE rc IS NOT NULL) AS mean_shared_goals,
       avg(shared_knowledge) FILTER (WHERE rc IS NOT NULL) AS mean_shared_knowledge,
       avg(mutual_respect) FILTER (WHERE rc IS NOT NULL) AS mean_mutual_respect
FROM s_ties GROUP BY ALL;

CREATE TEMP VIEW s_citizens AS
SELECT wave, municipality, citizen_id, case_id, count(value) AS n_items,
       CASE WHEN count(value) >= 3 THEN avg(value) END AS quality,
       max(value) FILTER (WHERE item = 'cq_1') AS cq_1,
       max(value) FILTER (WHERE item = 'cq_2') AS cq_2,
       max(value) FILTER (WHERE item = 'cq_3') AS cq_3,
       max(value) FILTER (WHERE item = 'cq_4') AS cq_4,
       max(value) FILTER (WHERE item = 'cq_5') AS cq_5
FROM z_clean GROUP BY ALL;

COPY (SELECT * FROM s_ties ORDER BY wave, municipality, unit_id, respondent_id, target_group) TO '${OUT}/score/ties.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM s_respondents ORDER BY wave, municipality, unit_id, respondent_id) TO '${OUT}/score/respondents.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM s_units ORDER BY wave, municipality, unit_id) TO '${OUT}/score/units.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM s_dyads ORDER BY wave, municipality, work_group, target_group) TO '${OUT}/score/dyads.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM s_citizens ORDER BY wave, municipality, citizen_id, case_id) TO '${OUT}/score/citizens.parquet' (FORMAT parquet, COMPRESSION zstd);

----------------------------------------------------------------------------------------------
-- link: H1 cases (case RCap over the involved groups' dyads), H2 respondents, H3 panel.
----------------------------------------------------------------------------------------------

DROP TABLE s_ties; DROP TABLE s_respondents;
CREATE TEMP VIEW k_involvement AS SELECT * FROM read_parquet('${OUT}/clean/case_involvement.parquet');
CREATE TEMP VIEW k_intervention AS SELECT * FROM read_parquet('${OUT}/clean/intervention.parquet');
CREATE TEMP VIEW k_citizens AS SELECT * FROM read_parquet('${OUT}/score/citizens.parquet');
CREATE TEMP VIEW k_dyads AS SELECT * FROM read_parquet('${OUT}/score/dyads.parquet');
CREATE TEMP VIEW k_units AS SELECT * FROM read_parquet('${OUT}/score/units.parquet');
CREATE TEMP VIEW k_respondents AS SELECT * FROM read_parquet('${OUT}/score/respondents.parquet');

CREATE TEMP VIEW l_h1 AS
WITH inv AS (
  SELECT wave, case_id, count(DISTINCT unit_id) AS n_units,
         count(*) FILTER (WHERE lead) AS n_leads, count(DISTINCT work_group) AS n_groups,
         string_agg(DISTINCT work_group, ';' ORDER BY work_group) AS work_groups,
         CASE WHEN count(*) FILTER (WHERE lead) = 1 THEN any_value(unit_id) FILTER (WHERE lead) END AS lead_unit_id,
         CASE WHEN count(*) FILTER (WHERE lead) = 1 THEN any_value(municipality) FILTER (WHERE lead) END AS municipality
  FROM k_involvement GROUP BY wave, case_id),
groups AS (SELECT DISTINCT wave, case_id, work_group FROM k_involvement),
pairs AS (
  SELECT g.wave, g.case_id, avg(d.mean) AS case_rcap, count(d.mean) AS n_pairs_defined
  FROM groups g JOIN groups h ON h.wave = g.wave AND h.case_id = g.case_id AND h.work_group <> g.work_group
  JOIN inv i ON i.wave = g.wave AND i.case_id = g.case_id
  LEFT JOIN k_dyads d ON d.wave = g.wave AND d.municipality = i.municipality
       AND d.work_group = g.work_group AND d.target_group = h.work_group
  GROUP BY g.wave, g.case_id),
unit_rcap AS (
  SELECT ci.wave, ci.case_id, avg(su.rcap) AS unit_rcap_mean, count(su.rcap) AS n_units_rcap
  FROM (SELECT DISTINCT wave, case_id, unit_id FROM k_involvement) ci
  LEFT JOIN k_units su ON su.wave = ci.wave AND su.unit_id = ci.unit_id
  GROUP BY ci.wave, ci.case_id),
quality AS (
  SELECT wave, case_id, avg(quality) AS quality, count(quality) AS n_citizens
  FROM k_citizens GROUP BY wave, case_id),
cases AS (SELECT wave, case_id FROM inv UNION SELECT wave, case_id FROM quality)
SELECT c.wave, c.case_id, i.municipality, i.lead_unit_id, coalesce(i.n_units, 0) AS n_units,
       coalesce(i.n_leads, 0) AS n_leads, coalesce(i.n_groups, 0) AS n_groups,
       coalesce(i.work_groups, '') AS work_groups, q.quality, coalesce(q.n_citizens, 0) AS n_citizens,
       p.case_rcap, coalesce(i.n_groups * (i.n_groups - 1), 0) AS n_pairs,
       coalesce(p.n_pairs_defined, 0) AS n_pairs_defined, u.unit_rcap_mean,
       coalesce(u.n_units_rcap, 0) AS n_units_rcap,
       CASE WHEN i.case_id IS NULL THEN 'not_in_case_involvement'
            WHEN i.n_leads = 0 THEN 'no_lead_unit'
            WHEN i.n_leads > 1 THEN 'several_lead_units'
            WHEN i.n_groups < 2 THEN 'fewer_than_two_groups'
            WHEN coalesce(p.n_pairs_defined, 0) = 0 THEN 'no_defined_dyad'
            WHEN q.quality IS NULL THEN 'no_citizen_quality' END AS exclusion
FROM cases c LEFT JOIN inv i USING (wave, case_id) LEFT JOIN pairs p USING (wave, case_id)
LEFT JOIN unit_rcap u USING (wave, case_id) LEFT JOIN quality q USING (wave, case_id);

CREATE TEMP VIEW l_h2 AS
WITH r AS (
  SELECT wave, municipality, unit_id, work_group, respondent_id, rcap, srm, srm_others, srm_others_n,
         CASE WHEN rcap IS NULL THEN 'no_rcap' WHEN srm_others IS NULL THEN 'no_srm_others' END AS exclusion
  FROM k_respondents)
SELECT *, avg(srm_others) FILTER (WHERE exclusion IS NULL) OVER u AS srm_between,
       count(srm_others) FILTER (WHERE exclusion IS NULL) OVER u AS srm_between_n,
       srm_others - avg(srm_others) FILTER (WHERE exclusion IS NULL) OVER u AS srm_within
FROM r WINDOW u AS (PARTITION BY wave, unit_id);

CREATE TEMP VIEW l_h3 AS
WITH r AS (
  SELECT r.wave, r.municipality, r.unit_id, r.work_group, r.respondent_id, r.rcap, i.arm,
         CASE i.arm WHEN 'intervention' THEN 1 WHEN 'control' THEN 0 END AS intervention,
         i.after_wave,
         CASE WHEN r.wave = i.after_wave THEN 0 WHEN r.wave = i.after_wave + 1 THEN 1 END AS post,
         CASE WHEN i.unit_id IS NULL THEN 'unit_not_in_design'
              WHEN r.wave NOT IN (i.after_wave, i.after_wave + 1) THEN 'wave_outside_window'
              WHEN r.rcap IS NULL THEN 'no_rcap' END AS exclusion
  FROM k_respondents r LEFT JOIN k_intervention i USING (unit_id))
SELECT *, CASE WHEN exclusion IS NULL THEN
         count(*) FILTER (WHERE exclusion IS NULL) OVER (PARTITION BY respondent_id, unit_id) = 2 END AS in_both_waves
FROM r;

COPY (SELECT * FROM l_h1 ORDER BY wave, case_id) TO '${OUT}/link/h1_cases.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM l_h2 ORDER BY wave, municipality, unit_id, respondent_id) TO '${OUT}/link/h2_respondents.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (SELECT * FROM l_h3 ORDER BY wave, municipality, unit_id, respondent_id) TO '${OUT}/link/h3_panel.parquet' (FORMAT parquet, COMPRESSION zstd);
