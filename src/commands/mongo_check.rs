use crate::cli::MongoCommand;
use crate::Result;

pub fn run(_cmd: MongoCommand) -> Result<i32> {
    Err(crate::Error::Usage("mongo check is being built".into()))
}
