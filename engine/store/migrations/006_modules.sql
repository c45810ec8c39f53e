-- Modules: which packaged modules are installed, at which version, with the manifest
-- they were installed from. Uploaded packages (POST /modules/import) are kept so an
-- upgrade or re-install can find them again; built-in modules come from the binary.
CREATE TABLE tessera.modules (
    name         text PRIMARY KEY,
    version      text NOT NULL,
    manifest     jsonb NOT NULL,
    -- files holds the opaque definitions (forms, views, reports) by module path.
    files        jsonb NOT NULL DEFAULT '{}',
    installed_at timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- demo_loaded marks that the demo data was loaded, so `serve --demo` loads it once.
    demo_loaded  boolean NOT NULL DEFAULT false
);

CREATE TABLE tessera.module_packages (
    name        text NOT NULL,
    version     text NOT NULL,
    archive     bytea NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
