-- The ingest workers remember which (node, org, tenant) claims name an
-- active node, so a batch does not look up every node it mentions (one
-- primary-key probe per message was about a fifth of the database's ingest
-- CPU; see crates/bench/README.md). Any change that could turn an admitted
-- claim away bumps this epoch, and a worker that reads a new epoch forgets
-- what it remembered. Enrolling a node needs no bump: only claims found
-- valid are remembered.
CREATE TABLE node_admission_epoch (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch     bigint NOT NULL
);
INSERT INTO node_admission_epoch (singleton, epoch) VALUES (true, 0);

CREATE FUNCTION node_admission_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE node_admission_epoch SET epoch = epoch + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER nodes_admission_narrowed
    AFTER UPDATE OF status, org_id, tenant_id ON nodes
    FOR EACH ROW
    WHEN ((NEW.status = 'decommissioned' AND OLD.status <> 'decommissioned')
          OR NEW.org_id <> OLD.org_id OR NEW.tenant_id <> OLD.tenant_id)
    EXECUTE FUNCTION node_admission_epoch_bump();

CREATE TRIGGER nodes_admission_deleted
    AFTER DELETE ON nodes
    FOR EACH STATEMENT
    EXECUTE FUNCTION node_admission_epoch_bump();

CREATE TRIGGER nodes_admission_truncated
    AFTER TRUNCATE ON nodes
    FOR EACH STATEMENT
    EXECUTE FUNCTION node_admission_epoch_bump();
