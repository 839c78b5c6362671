-- A repository written by jupyter_sparkserve at commit 6c1381c (schema version 1): the model
-- 'iris' imported twice from one scikit-learn MLflow folder, with tags, metrics and the alias
-- champion -> 1, dumped with sqlite3 iterdump. Artifacts are not kept: tests/test_schema.py
-- recreates a model folder at each artifact_dir.
BEGIN TRANSACTION;
CREATE TABLE model_aliases (
	model_id INTEGER NOT NULL, 
	alias VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	PRIMARY KEY (model_id, alias), 
	FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);
INSERT INTO "model_aliases" VALUES(1,'champion',1);
CREATE TABLE model_versions (
	id INTEGER NOT NULL, 
	model_id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	description TEXT NOT NULL, 
	flavors JSON NOT NULL, 
	signature JSON, 
	has_input_example BOOLEAN NOT NULL, 
	metrics JSON NOT NULL, 
	source TEXT NOT NULL, 
	artifact_dir VARCHAR(512) NOT NULL, 
	size_bytes BIGINT NOT NULL, 
	mlflow_version VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_model_version UNIQUE (model_id, version), 
	FOREIGN KEY(model_id) REFERENCES models (id) ON DELETE CASCADE
);
INSERT INTO "model_versions" VALUES(1,1,1,'first cut','["sklearn", "python_function"]','{"inputs": [{"type": "double", "name": "sepal length (cm)", "required": true}, {"type": "double", "name": "sepal width (cm)", "required": true}, {"type": "double", "name": "petal length (cm)", "required": true}, {"type": "double", "name": "petal width (cm)", "required": true}], "outputs": [{"type": "long", "required": true}], "params": null}',1,'{"accuracy": 0.96}','/tmp/v1gen/model','iris/v1-9ba1454c5eac',13027,'3.17.2','2026-11-24 07:46:36.057825');
INSERT INTO "model_versions" VALUES(2,1,2,'retrained','["sklearn", "python_function"]','{"inputs": [{"type": "double", "name": "sepal length (cm)", "required": true}, {"type": "double", "name": "sepal width (cm)", "required": true}, {"type": "double", "name": "petal length (cm)", "required": true}, {"type": "double", "name": "petal width (cm)", "required": true}], "outputs": [{"type": "long", "required": true}], "params": null}',1,'{"accuracy": 0.97, "f1": 0.965}','/tmp/v1gen/model','iris/v2-d5507532b294',13027,'3.17.2','2026-11-24 07:46:36.072184');
CREATE TABLE models (
	id INTEGER NOT NULL, 
	name VARCHAR(128) NOT NULL, 
	last_version INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
INSERT INTO "models" VALUES(1,'iris',2,'2026-11-24 07:46:36.057825','2026-11-24 07:46:36.078916');
CREATE TABLE sparkserve_schema (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR(255) NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "sparkserve_schema" VALUES('schema_version','1');
CREATE TABLE version_tags (
	version_id INTEGER NOT NULL, 
	"key" VARCHAR(250) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY (version_id, "key"), 
	FOREIGN KEY(version_id) REFERENCES model_versions (id) ON DELETE CASCADE
);
INSERT INTO "version_tags" VALUES(1,'team','risk');
INSERT INTO "version_tags" VALUES(1,'stage','dev');
INSERT INTO "version_tags" VALUES(2,'team','risk');
COMMIT;
