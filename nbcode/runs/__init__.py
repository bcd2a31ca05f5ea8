"""What runs the paper: budgets (profiles), device precision, memory, the run cache and its
shared scaffolding, the classifier and GAN training runs, and the whole reproduction."""
