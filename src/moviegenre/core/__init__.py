"""What every layer shares: errors, the genres, settings, atomic files, the input contract
(:mod:`~moviegenre.core.items`) and labelled datasets (:mod:`~moviegenre.core.data`)."""
